import os
import subprocess
import time

import dagster as dg
import pytest

from stock_platform.platform.spark import DUMP_SETTLED_S, class_data_sharing_flags, java_executable, require_java


def test_missing_java_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java anywhere
    with pytest.raises(dg.Failure) as error:
        require_java()
    message = error.value.description
    assert "Java was not found" in message
    assert "apt-get install openjdk-17-jre-headless" in message and "JAVA_HOME" in message


def test_too_old_java_is_named(monkeypatch, tmp_path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(dg.Failure, match=r"Java 11\.0\.2 found at .* is too old"):
        require_java()


def test_the_installed_java_passes():
    require_java()  # Java 17 is a documented prerequisite of `make run` and `make test`


def test_class_data_sharing_archives_on_the_first_run_and_maps_on_the_next(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    [first, quiet] = class_data_sharing_flags("spark-x")
    assert first.startswith("-XX:ArchiveClassesAtExit=") and first.endswith(f".{os.getpid()}.dump")
    assert quiet == "-Xlog:cds=off"
    dump = first.split("=", 1)[1]
    # A real JVM dumps the classes it loaded when it exits normally.
    subprocess.run([java_executable(), first, quiet, "-version"], check=True, capture_output=True)
    assert os.path.getsize(dump) > 0

    # One run dumps; the runs that start meanwhile go without. A dump is adopted only once it
    # has settled: it may still be being written.
    assert class_data_sharing_flags("spark-x") == []
    settled = time.time() - DUMP_SETTLED_S - 1
    os.utime(dump, (settled, settled))
    [mapped] = class_data_sharing_flags("spark-x")
    archive = mapped.split("=", 1)[1]
    assert mapped.startswith("-XX:SharedArchiveFile=") and not os.path.exists(dump)
    assert not os.path.exists(f"{archive}.claim")
    # -Xshare:on fails the JVM unless it can map the archive.
    subprocess.run([java_executable(), mapped, "-Xshare:on", "-version"], check=True, capture_output=True)

    # Another classpath gets an archive of its own.
    [other, _] = class_data_sharing_flags("spark-y")
    assert other.startswith("-XX:ArchiveClassesAtExit=") and archive not in other
