"""The Java check Spark needs, light enough for the CLI to run before anything heavy loads, and the
class-data-sharing archive that shortens the JVM's start."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg

from stock_platform.cache import cache_dir

# A finished archive dump is renamed into place by the next run; one this old is surely complete
# (a dump takes seconds, and the file changes while it is written).
DUMP_SETTLED_S = 60
CLAIM_EXPIRES_S = 3600


def java_executable() -> str | None:
    """The `java` Spark starts: $JAVA_HOME/bin/java, else the one on PATH."""
    if os.environ.get("JAVA_HOME"):
        return os.path.join(os.environ["JAVA_HOME"], "bin", "java")
    return shutil.which("java")


def require_java(minimum: int = 17) -> None:
    """Fail with an actionable message unless a Java runtime >= `minimum` is available."""
    java = java_executable()
    hint = (
        f"Spark needs Java {minimum}. Install a JDK/JRE {minimum}, e.g. "
        f"`sudo apt-get install openjdk-{minimum}-jre-headless` (Debian/Ubuntu) or "
        f"`brew install openjdk@{minimum}` (macOS), then put `java` on PATH or set JAVA_HOME."
    )
    if not java or not os.path.exists(java):
        raise dg.Failure(f"Java was not found. {hint}")
    output = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    version = output.split('"')[1] if '"' in output else ""
    major = int(version.split(".")[1] if version.startswith("1.") else version.split(".")[0] or 0)
    if major < minimum:
        raise dg.Failure(f"Java {version or '?'} found at {java} is too old. {hint}")


def class_data_sharing_flags(classpath_id: str) -> list[str]:
    """JVM flags for application class-data sharing (AppCDS).

    Spark's JVM loads some 22,000 classes from its jars at every start. The first run's JVM dumps
    them into an archive when it exits; later runs map that archive: about 3 s less start-up and
    10 CPU-s less for a year's cleaning. One archive per Java install and Spark classpath
    (`classpath_id`), in the user's cache. A stale or damaged archive costs only a warning: the
    JVM then loads its classes as usual.
    """
    java = java_executable()
    if not java or not os.path.exists(java):
        return []
    real = os.path.realpath(java)
    stat = os.stat(real)
    key = hashlib.sha256(f"{real}:{stat.st_mtime_ns}:{stat.st_size}:{classpath_id}".encode())
    archive = cache_dir() / f"spark-classes-{key.hexdigest()[:16]}.jsa"
    if " " in str(archive):
        return []  # spark.driver.extraJavaOptions is split on spaces
    _adopt_finished_dump(archive)
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}"]
    # Dumping takes the exiting JVM 30-60 CPU-s: one run dumps (under a name of its own), the
    # runs that start meanwhile go without.
    if not _claim(Path(f"{archive}.claim")):
        return []
    # Without -Xlog:cds=off the dump prints a warning per class it cannot archive (some 850 lines
    # of Spark's generated and signed-jar classes) into the run's output.
    return [f"-XX:ArchiveClassesAtExit={archive}.{os.getpid()}.dump", "-Xlog:cds=off"]


def _claim(claim: Path) -> bool:
    """Whether this process may dump the archive: the first since the last claim expired."""
    for _ in range(2):
        try:
            claim.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            try:
                if time.time() - claim.stat().st_mtime < CLAIM_EXPIRES_S:
                    return False
                claim.unlink()  # its run never dumped (killed, or its JVM is still up)
            except OSError:
                pass
        except OSError:
            return False
    return False


def _adopt_finished_dump(archive: Path) -> None:
    settled = []
    for dump in archive.parent.glob(f"{archive.name}.*.dump"):
        try:
            stat = dump.stat()
        except OSError:
            continue  # adopted or removed by a concurrent run
        if time.time() - stat.st_mtime > DUMP_SETTLED_S and stat.st_size:
            settled.append(dump)
    for dump in settled:
        try:
            if archive.exists():
                dump.unlink()
            else:
                os.replace(dump, archive)
        except OSError:
            pass  # another run adopted or removed it
    if settled:
        Path(f"{archive}.claim").unlink(missing_ok=True)
