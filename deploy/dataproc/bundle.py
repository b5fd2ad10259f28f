"""Build what a Dataproc cluster needs to run the platform's Spark jobs, for one release:

    build/dataproc/
      spark_job.py            the Pipes entry point (stock_platform/platform/spark_job.py)
      stock_platform.zip      the package, imported by the job from the zip (pure Python)
      install-wheels.sh       the cluster's initialization action
      wheels/requirements.txt the dependency group `dataproc-job`, pinned by uv.lock
      wheels/*.whl            those packages as wheels for the cluster (Linux x86-64, CPython 3.11)

Internal-IP-only clusters have no internet egress, so nothing is installed from PyPI at cluster
start: the initialization action installs the staged wheels with `pip --no-index`. Run

    uv run python deploy/dataproc/bundle.py [OUT]
    gcloud storage cp -r build/dataproc/* gs://CODE_BUCKET/stock_platform/$VERSION/

(`make dataproc-bundle` does the first step.) `--no-wheels` skips the download (tests).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "stock_platform"
GROUP = "dataproc-job"
# The Dataproc image's Python (2.2 images: CPython 3.11 on Debian 12, x86-64).
PLATFORM = ["--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp"]


def requirements() -> str:
    """The dependency group pinned by the lock file, one `name==version` per line."""
    uv = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    return subprocess.run(
        [uv, "export", "--frozen", "--only-group", GROUP, "--no-hashes", "--no-emit-project",
         "--no-header", "--no-annotate"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout


def build_zip(path: Path) -> Path:
    """stock_platform/ as a zip (no caches, no compiled files), importable from sys.path."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(PACKAGE.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                archive.write(file, file.relative_to(REPO))
    return path


def build(out: Path, wheels: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    build_zip(out / "stock_platform.zip")
    shutil.copy(PACKAGE / "platform" / "spark_job.py", out / "spark_job.py")
    shutil.copy(Path(__file__).with_name("install-wheels.sh"), out / "install-wheels.sh")
    wheel_dir = out / "wheels"
    wheel_dir.mkdir(exist_ok=True)
    (wheel_dir / "requirements.txt").write_text(requirements())
    if wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", *PLATFORM,
             "--no-deps", "-r", str(wheel_dir / "requirements.txt"), "-d", str(wheel_dir)],
            check=True,
        )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(REPO / "build" / "dataproc"))
    parser.add_argument("--no-wheels", action="store_true", help="skip downloading the wheels")
    arguments = parser.parse_args()
    print(build(Path(arguments.out), wheels=not arguments.no_wheels))
