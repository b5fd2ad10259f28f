"""Warehouse loads for every domain: a table contract, and partition replacement on DuckDB
(local) and BigQuery (gcp). A domain declares its raw table as a `WarehouseTable`; the platform
creates it and replaces its day partitions from clean Parquet, atomically."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class Column:
    name: str
    bigquery_type: str  # DATE, STRING, INT64, FLOAT64, BOOL, TIMESTAMP
    duckdb_type: str
    description: str


@dataclass(frozen=True)
class WarehouseTable:
    """A day-partitioned warehouse table: `dataset.name`, partitioned by `partition_column`."""

    dataset: str  # BigQuery dataset, DuckDB schema
    name: str
    partition_column: str
    columns: tuple[Column, ...]
    clustering: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.dataset}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def table_schema(self) -> dg.TableSchema:
        """The columns as Dagster shows them in the UI (dagster/column_schema)."""
        return dg.TableSchema(
            columns=[
                dg.TableColumn(c.name, c.bigquery_type, description=c.description)
                for c in self.columns
            ]
        )
