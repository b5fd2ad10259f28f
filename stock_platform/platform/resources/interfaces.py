"""What assets depend on: the lake, the warehouse and Spark, whatever the environment.

Assets name these interfaces as their resource types; `platform.resources.build_resources` picks
the implementation (local.py or gcp.py) for STOCK_PLATFORM_ENV.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import pyarrow as pa

from stock_platform.platform.lake import Lake
from stock_platform.platform.spark_job import load_job as load_job
from stock_platform.platform.warehouse import WarehouseTable


class LakeResource(dg.ConfigurableResource):
    """The data lake: a local folder or gs://bucket/prefix."""

    root: str

    def get(self) -> Lake:
        return Lake(self.root)


class WarehouseResource(dg.ConfigurableResource):
    """Where the domains' raw tables live (DuckDB locally, BigQuery in gcp)."""

    def replace_partitions(self, table: WarehouseTable, files_by_day: dict[dt.date, list[str]]) -> int:
        """Make each day's rows exactly those of its clean Parquet files (none: no rows);
        returns the rows loaded."""
        raise NotImplementedError

    def partition_stats(
        self, table: WarehouseTable, first: dt.date, last: dt.date, violations: dict[str, str]
    ) -> dict[str, int]:
        """Rows in [first, last] ("rows"), and per named SQL predicate the rows breaking it."""
        raise NotImplementedError

    def rows_by_partition(self, table: WarehouseTable, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        """Rows per day in [first, last] (days without rows are absent)."""
        raise NotImplementedError

    def read_range(self, table: WarehouseTable, first: dt.date, last: dt.date) -> pa.Table:
        """The rows of `table` (its columns) with partition_column in [first, last]."""
        raise NotImplementedError

    def table_name(self, table: WarehouseTable) -> str:
        raise NotImplementedError


class SparkResource(dg.ConfigurableResource):
    """Runs a domain's Spark job somewhere.

    A job is a function `job(spark, **arguments) -> dict` named as "package.module:function"; its
    arguments are JSON values (so they can travel to a cluster) and it returns metadata for the
    step's materialization."""

    def run(self, context: dg.AssetExecutionContext, job: str, arguments: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

