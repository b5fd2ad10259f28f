"""Spark for every domain: the Java check, the session settings, and the local session.

A domain's Spark code is a plain function `job(spark, **arguments) -> metadata` in its own folder;
the platform's Spark resource (platform/resources) runs it in-process or on a cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from stock_platform.platform.settings import platform_settings

# HotSpot never JIT-compiles a method over 8,000 bytes of bytecode, and the method Spark generates
# for a wide validation (the stock cleaning's is 8,476 bytes in Spark 4.0) is larger, so it ran
# interpreted: this flag took a ten-year cleaning from 182-194 s to 164-167 s.
JIT_OPTIONS = "-XX:-DontCompileHugeMethods"

# Session settings the domains' transforms rely on, wherever Spark runs (in-process, on
# Kubernetes, on Dataproc).
SESSION_CONFIG: dict[str, str] = {
    # Timestamps are written as UTC instants; dates never shift with the host's zone.
    "spark.sql.session.timeZone": "UTC",
    # Off: partitions are fixed by day, and with adaptive execution cached rows lose their
    # (day, key) order, so each write sorted them again.
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # BigQuery and DuckDB read INT64 microsecond timestamps; Spark's default INT96 is legacy.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Where tasks run on executors of their own (Kubernetes, Dataproc); a local driver runs them
    # itself and gets the flag in spark.driver.extraJavaOptions.
    "spark.executor.extraJavaOptions": JIT_OPTIONS,
}


def java_executable() -> str | None:
    """The `java` Spark starts: $JAVA_HOME/bin/java, else the one on PATH."""
    home = platform_settings().java_home
    return str(Path(home) / "bin" / "java") if home else shutil.which("java")


def require_java(minimum: int = 17) -> None:
    """Fail with an actionable message unless a Java runtime >= `minimum` is available."""
    java = java_executable()
    hint = (
        f"Spark needs Java {minimum}. Install a JDK/JRE {minimum}, e.g. "
        f"`sudo apt-get install openjdk-{minimum}-jre-headless` (Debian/Ubuntu) or "
        f"`brew install openjdk@{minimum}` (macOS), then put `java` on PATH or set JAVA_HOME."
    )
    if not java or not Path(java).exists():
        raise dg.Failure(f"Java was not found. {hint}")
    output = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    version = output.split('"')[1] if '"' in output else ""
    major = int(version.split(".")[1] if version.startswith("1.") else version.split(".")[0] or 0)
    if major < minimum:
        raise dg.Failure(f"Java {version or '?'} found at {java} is too old. {hint}")


def local_spark_config(data_dir: Path, lake_on_local_disk: bool = True) -> dict[str, str]:
    """Spark in this process, on every core: the local default (and gcp's SPARK_RUNNER=local,
    where the lake is in GCS: `lake_on_local_disk=False`)."""
    tmp = data_dir / "spark-tmp"
    config = {
        "spark.master": "local[*]",
        "spark.app.name": "stock_platform",
        # Caps the JVM (cached rows spill to disk beyond it): a ten-year run stays under 8 GiB.
        "spark.driver.memory": "4g",
        **SESSION_CONFIG,
        "spark.sql.shuffle.partitions": "8",
        # Few, large read tasks: a task running Python (the stock cleaning's page parser) pays a
        # fixed cost in its worker (re-reading the import caches of Spark's pyspark.zip, about
        # 0.5 s), so the small raw files are read in at most two tasks per core. Ten years of
        # stock pages on 2 cores: 4 tasks instead of 62, the cleaning 170 s instead of 227 s.
        "spark.sql.files.maxPartitionNum": str(2 * (os.cpu_count() or 1)),
        "spark.ui.enabled": "false",
        "spark.local.dir": str(tmp),
        # G1PeriodicGCInterval: an idle JVM returns its heap to the system (the session stays up
        # while the warehouse load and dbt run after the cleaning).
        "spark.driver.extraJavaOptions": " ".join(
            [f"-Dderby.system.home={tmp}", "-XX:G1PeriodicGCInterval=5000", JIT_OPTIONS]
        ),
    }
    if lake_on_local_disk:
        # List input files on the driver: beyond 32 paths Spark lists them in a job with one task
        # per path, 7 s for a year's 732 raw pages on the local disk. Not for gs://, where each
        # listing is a request and listing in parallel pays.
        config["spark.sql.sources.parallelPartitionDiscovery.threshold"] = "1000000"
    return config


def start_session(config: dict[str, str]) -> Any:
    """A SparkSession with `config` (or the one this process already has)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in config.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkSessionResource(dg.ConfigurableResource):
    """One Spark session per run process, shared by every Spark step of the run.

    Spark's JVM takes 6-8 s to start. It starts in the background when the run's resources are
    set up, while the first steps (the ingests) work; the first use of `spark_session` waits for
    it and raises its error, if any."""

    spark_config: dict[str, str]

    _starting: Future | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_java()
        starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spark-start")
        self._starting = starter.submit(start_session, self.spark_config)
        starter.shutdown(wait=False)

    @property
    def spark_session(self) -> Any:
        if self._starting is None:  # used outside a run (a test, a notebook)
            return start_session(self.spark_config)
        return self._starting.result()
