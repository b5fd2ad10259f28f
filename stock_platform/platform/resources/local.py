"""Resources for STOCK_PLATFORM_ENV=local: the lake on local disk, DuckDB, Spark in-process."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import pyarrow as pa

from stock_platform.platform.resources.interfaces import SparkResource, WarehouseResource, load_job
from stock_platform.platform.spark import SparkSessionResource
from stock_platform.platform.warehouse import WarehouseTable
from stock_platform.platform.warehouse.duckdb import DuckDBWarehouse


class DuckDBWarehouseResource(WarehouseResource):
    path: str

    def replace_partitions(self, table: WarehouseTable, files_by_day: dict[dt.date, list[str]]) -> int:
        return DuckDBWarehouse(self.path).replace_partitions(table, files_by_day)

    def partition_stats(
        self, table: WarehouseTable, first: dt.date, last: dt.date, violations: dict[str, str]
    ) -> dict[str, int]:
        return DuckDBWarehouse(self.path).partition_stats(table, first, last, violations)

    def rows_by_partition(self, table: WarehouseTable, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        return DuckDBWarehouse(self.path).rows_by_partition(table, first, last)

    def read_range(self, table: WarehouseTable, first: dt.date, last: dt.date) -> pa.Table:
        return DuckDBWarehouse(self.path).read_range(table, first, last)

    def table_name(self, table: WarehouseTable) -> str:
        return table.qualified_name


class InProcessSparkResource(SparkResource):
    """Spark in the run's own process (local[*] by default; in gcp's `kubernetes` runner the
    driver, with executors as pods)."""

    session: SparkSessionResource

    def run(self, context: dg.AssetExecutionContext, job: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return load_job(job)(self.session.spark_session, **arguments)
