"""The one place that picks resources for an environment (STOCK_PLATFORM_ENV).

The asset graph is the same everywhere; only these resources change. Assets depend on the
resource interfaces below, never on a concrete backend.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_pyspark import PySparkResource

from stock_platform.lake import Lake
from stock_platform.settings import Settings
from stock_platform.sources import FetchedPage
from stock_platform.warehouse.duckdb import DuckDBWarehouse

DBT_PROJECT_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "dbt_project")


class LakeResource(dg.ConfigurableResource):
    """The data lake: a local folder or gs://bucket/prefix."""

    root: str

    def get(self) -> Lake:
        return Lake(self.root)


class SourceResource(dg.ConfigurableResource):
    """Where raw pages come from."""

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        raise NotImplementedError


class SyntheticSourceResource(SourceResource):
    """The embedded synthetic market (deterministic for a seed), served as API pages."""

    seed: int
    page_size: int

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        from stock_platform.sources.synthetic_source import SyntheticSource

        return SyntheticSource(self.seed, self.page_size).fetch_days(days)


class WarehouseResource(dg.ConfigurableResource):
    """Where `stock_raw.daily_prices` lives."""

    def replace_partitions(self, first: dt.date, last: dt.date, files: list[str]) -> int:
        raise NotImplementedError

    def partition_stats(self, first: dt.date, last: dt.date) -> dict[str, int]:
        raise NotImplementedError

    @property
    def table_name(self) -> str:
        raise NotImplementedError


class DuckDBWarehouseResource(WarehouseResource):
    path: str
    raw_dataset: str

    def _warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.path, self.raw_dataset)

    def replace_partitions(self, first: dt.date, last: dt.date, files: list[str]) -> int:
        return self._warehouse().replace_partitions(first, last, files)

    def partition_stats(self, first: dt.date, last: dt.date) -> dict[str, int]:
        return self._warehouse().partition_stats(first, last)

    @property
    def table_name(self) -> str:
        return f"{self.raw_dataset}.daily_prices"


class LocalSparkResource(PySparkResource):
    """dagster-pyspark's session on local[*]; says what to install when Java is missing."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_java()
        super().setup_for_execution(context)


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


def dbt_executable() -> str:
    """The dbt installed beside this interpreter (the project's venv), even if not on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "dbt")
    return beside if os.path.exists(beside) else "dbt"


def local_spark_config(settings: Settings) -> dict[str, Any]:
    return {
        "spark.master": "local[*]",
        "spark.app.name": "stock_platform",
        "spark.driver.memory": "6g",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.local.dir": str(settings.data_dir / "spark-tmp"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={settings.data_dir / 'spark-tmp'}",
    }


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """Locally every step of a run shares one process: Python, Dagster and Spark's JVM start once
    per run instead of once per step."""
    return dg.in_process_executor


def build_resources(settings: Settings) -> dict[str, Any]:
    """Resources for settings.env ("local" or "gcp")."""
    if settings.env != "local":
        raise dg.DagsterInvariantViolationError(
            f"STOCK_PLATFORM_ENV={settings.env!r} is not available yet; use local"
        )
    # dbt runs as a subprocess inside dbt_project/: give its profile the absolute data dir.
    os.environ["STOCK_PLATFORM_DATA_DIR"] = str(settings.data_dir)
    if settings.source != "synthetic":
        raise dg.DagsterInvariantViolationError(
            f"STOCK_SOURCE={settings.source!r} is not available yet; use synthetic"
        )
    return {
        "source": SyntheticSourceResource(
            seed=settings.synthetic_seed, page_size=settings.page_size
        ),
        "lake": LakeResource(root=settings.lake_root),
        "pyspark": LocalSparkResource(spark_config=local_spark_config(settings)),
        "warehouse": DuckDBWarehouseResource(
            path=str(settings.warehouse_path), raw_dataset=settings.raw_dataset
        ),
        "dbt": DbtCliResource(project_dir=DBT_PROJECT_DIR, target="local", dbt_executable=dbt_executable()),
    }
