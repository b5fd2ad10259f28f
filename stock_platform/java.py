"""The Java check Spark needs, light enough for the CLI to run before anything heavy loads."""

from __future__ import annotations

import os
import shutil
import subprocess

import dagster as dg


def require_java(minimum: int = 17) -> None:
    """Fail with an actionable message unless a Java runtime >= `minimum` is available."""
    java = (
        os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        if os.environ.get("JAVA_HOME")
        else shutil.which("java")
    )
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
