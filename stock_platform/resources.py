"""The one place that picks resources for an environment (STOCK_PLATFORM_ENV).

The asset graph is the same everywhere; only these resources change. Assets depend on the
resource interfaces below, never on a concrete backend.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import Any

import dagster as dg
import pyspark
from dagster_dbt import DbtCliResource
from dagster_pyspark import PySparkResource
from dagster_pyspark.resources import spark_session_from_config
from packaging.version import Version
from pydantic import PrivateAttr

from stock_platform.java import class_data_sharing_flags, require_java
from stock_platform.lake import Lake
from stock_platform.settings import Settings
from stock_platform.sources import FetchedPage
from stock_platform.spark import JIT_OPTIONS, SESSION_CONFIG
from stock_platform.spark.cleaning import RawPage, run_cleaning
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

    def fetch_chunks(self, days: list[dt.date], size: int) -> Iterator[dict[dt.date, list[FetchedPage]]]:
        """fetch_days `size` days at a time: a long backfill never holds all its pages at once."""
        for first in range(0, len(days), size):
            yield self.fetch_days(days[first : first + size])


class SyntheticSourceResource(SourceResource):
    """The embedded synthetic market (deterministic for a seed), served as API pages."""

    seed: int
    page_size: int

    def _source(self):
        from stock_platform.sources.synthetic_source import SyntheticSource

        return SyntheticSource(self.seed, self.page_size)

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        return self._source().fetch_days(days)

    def fetch_chunks(self, days: list[dt.date], size: int) -> Iterator[dict[dt.date, list[FetchedPage]]]:
        return self._source().fetch_chunks(days, size)


class DataGoKrSourceResource(SourceResource):
    """The FSC stock price API on data.go.kr (stock_platform.sources.data_go_kr)."""

    service_key: str  # set from dg.EnvVar, so the UI and run config show the variable, not the key
    base_url: str
    max_rps: float
    page_size: int
    max_in_flight: int = 32
    max_attempts: int = 6
    backoff_s: float = 1.0
    timeout_s: float = 30.0

    def fetch_days(self, days: list[dt.date]) -> dict[dt.date, list[FetchedPage]]:
        from stock_platform.sources.data_go_kr import (
            DataGoKrConfig,
            DataGoKrSource,
            PermanentError,
            QuotaExhaustedError,
        )

        try:
            config = DataGoKrConfig(
                service_key=self.service_key,
                base_url=self.base_url,
                max_rps=self.max_rps,
                page_size=self.page_size,
                max_in_flight=self.max_in_flight,
                max_attempts=self.max_attempts,
                backoff_s=self.backoff_s,
                timeout_s=self.timeout_s,
            )
            return DataGoKrSource(config, log=dg.get_dagster_logger()).fetch_days(days)
        except (PermanentError, QuotaExhaustedError) as exc:
            # Retrying the step cannot help today; transient errors keep the asset's retry policy.
            raise dg.Failure(description=str(exc), allow_retries=False) from None


def build_source(settings: Settings) -> SourceResource:
    """STOCK_SOURCE: the synthetic market or data.go.kr (the key is read when a run starts)."""
    if settings.source == "data_go_kr":
        return DataGoKrSourceResource(
            service_key=dg.EnvVar("DATA_GO_KR_SERVICE_KEY"),
            base_url=settings.base_url,
            max_rps=settings.max_rps,
            page_size=settings.page_size,
        )
    return SyntheticSourceResource(seed=settings.synthetic_seed, page_size=settings.page_size)


class WarehouseResource(dg.ConfigurableResource):
    """Where `stock_raw.daily_prices` lives."""

    def replace_partitions(self, files_by_day: dict[dt.date, list[str]]) -> int:
        """Make each day's rows exactly those of its clean Parquet files (none: no rows)."""
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

    def replace_partitions(self, files_by_day: dict[dt.date, list[str]]) -> int:
        return self._warehouse().replace_partitions(files_by_day)

    def partition_stats(self, first: dt.date, last: dt.date) -> dict[str, int]:
        return self._warehouse().partition_stats(first, last)

    @property
    def table_name(self) -> str:
        return f"{self.raw_dataset}.daily_prices"


class SparkResource(dg.ConfigurableResource):
    """Runs the cleaning transform (stock_platform.spark.cleaning) somewhere."""

    def clean(self, context: dg.AssetExecutionContext, pages: list[RawPage], staging_uri: str) -> None:
        """Write clean/ and rejected/ Parquet for `pages` under `staging_uri`."""
        raise NotImplementedError


class JavaCheckedPySparkResource(PySparkResource):
    """dagster-pyspark's session, started in the background; says what to install when Java is
    missing."""

    _starting: Future | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_java()
        use_this_python_for_spark_workers()
        # Spark's JVM takes 6-8 s to start: it starts while the run's first step (the ingest)
        # works, and the first use of the session waits for it (and raises its error, if any).
        starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spark-start")
        self._starting = starter.submit(spark_session_from_config, self.spark_config)
        starter.shutdown(wait=False)

    @property
    def spark_session(self) -> Any:
        if self._spark_session is None and self._starting is not None:
            self._spark_session = self._starting.result()
        return self._spark_session


class InProcessSparkResource(SparkResource):
    """Spark in the run's own process through dagster-pyspark (local[*] by default)."""

    pyspark: JavaCheckedPySparkResource

    def clean(self, context: dg.AssetExecutionContext, pages: list[RawPage], staging_uri: str) -> None:
        run_cleaning(self.pyspark.spark_session, pages, staging_uri)


def use_this_python_for_spark_workers() -> None:
    """Local Spark starts its Python workers with $PYSPARK_PYTHON, else `python3` from PATH (read
    once, when the SparkContext is created; the `spark.pyspark.python` setting does not apply to
    a session created from Python). Run as `.venv/bin/python ...` without the venv on PATH, that
    `python3` lacks pandas and every mapInPandas task fails: default to this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def dbt_executable() -> str:
    """The dbt installed beside this interpreter (the project's venv), even if not on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "dbt")
    return beside if os.path.exists(beside) else "dbt"


class ProjectDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt resource, minus a second dbt process per run.

    Before every invocation dagster-dbt runs `dbt --version` to learn the version: a dbt start-up
    plus a PyPI lookup of the latest release, 3-5 s of each run. When the executable is the dbt
    installed beside this interpreter, its version is the installed dbt-core package's."""

    @cached_property
    def _cli_version(self) -> Version:
        if os.path.realpath(self.dbt_executable) == os.path.realpath(dbt_executable()):
            return Version(importlib.metadata.version("dbt-core"))
        return super()._cli_version


def local_spark_config(settings: Settings) -> dict[str, Any]:
    return {
        "spark.master": "local[*]",
        "spark.app.name": "stock_platform",
        # Caps the JVM (the cached rows spill to disk beyond it): a ten-year run stays under 8 GiB.
        "spark.driver.memory": "4g",
        **SESSION_CONFIG,
        "spark.sql.shuffle.partitions": "8",
        # List the raw pages on the driver: beyond 32 paths Spark lists them in a job with one task
        # per page, 7 s for a year's 732 pages on the local disk.
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000000",
        # Opening a local file costs far less than the 4 MB Spark assumes: a task reads about 120
        # raw pages instead of 32 (ten years: 62 tasks instead of 231, and the read and parse took
        # 39.7 s instead of 52.0 s).
        "spark.sql.files.openCostInBytes": str(1024 * 1024),
        "spark.ui.enabled": "false",
        # The workers import this venv's pyspark instead of Spark's copy in pyspark.zip (see there).
        "spark.python.daemon.module": "stock_platform.spark.worker_daemon",
        "spark.local.dir": str(settings.data_dir / "spark-tmp"),
        "spark.driver.extraJavaOptions": " ".join(
            # G1PeriodicGCInterval: an idle JVM returns its heap to the system (the session stays
            # up while the warehouse load and dbt run after the cleaning).
            [f"-Dderby.system.home={settings.data_dir / 'spark-tmp'}", "-XX:G1PeriodicGCInterval=5000",
             JIT_OPTIONS,
             *class_data_sharing_flags(
                f"{pyspark.__version__}:{os.path.dirname(pyspark.__file__)}")]
        ),
    }


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """Locally every step of a run shares one process: Python, Dagster and Spark's JVM start once
    per run instead of once per step. In gcp (GKE) every step gets its own pod, sized by its op
    tags (stock_platform/k8s.py)."""
    if settings.env == "gcp":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return dg.in_process_executor


def build_resources(settings: Settings) -> dict[str, Any]:
    """Resources for settings.env ("local" or "gcp")."""
    if settings.env == "gcp":
        from stock_platform.gcp import (
            gcp_resources,  # its client libraries load in seconds
        )

        return {"source": build_source(settings), **gcp_resources(settings)}
    # dbt runs as a subprocess inside dbt_project/: give its profile the absolute data dir.
    os.environ["STOCK_PLATFORM_DATA_DIR"] = str(settings.data_dir)
    return {
        "source": build_source(settings),
        "lake": LakeResource(root=settings.lake_root),
        "spark": InProcessSparkResource(
            pyspark=JavaCheckedPySparkResource(spark_config=local_spark_config(settings))
        ),
        "warehouse": DuckDBWarehouseResource(
            path=str(settings.warehouse_path), raw_dataset=settings.raw_dataset
        ),
        "dbt": ProjectDbtCliResource(project_dir=DBT_PROJECT_DIR, target="local", dbt_executable=dbt_executable()),
    }
