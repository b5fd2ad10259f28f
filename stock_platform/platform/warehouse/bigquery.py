"""The gcp warehouse: day-partitioned tables in BigQuery, replaced one day partition at a time.

A day is replaced by one load job from its clean Parquet files into `daily_prices$YYYYMMDD` with
WRITE_TRUNCATE: BigQuery swaps the partition atomically when the job succeeds (readers see the old
or the new day, never a mix), and re-running the same day gives the same partition. A load into a
partition decorator also fails if a file holds a row of another day, so a day cannot leak into its
neighbour. A range submits one job per day and lets up to `max_in_flight` run concurrently; a day
without files (market closed) is emptied by a DELETE DML job instead, since a load needs a file.
"""

from __future__ import annotations

import collections
import datetime as dt

import pyarrow as pa
from google.cloud import bigquery

from stock_platform.platform.warehouse import WarehouseTable


def bigquery_schema(table: WarehouseTable) -> list[bigquery.SchemaField]:
    """The table contract as an explicit BigQuery schema (loads never infer types)."""
    return [
        bigquery.SchemaField(c.name, c.bigquery_type, description=c.description)
        for c in table.columns
    ]


def day_partitioning(table: WarehouseTable) -> bigquery.TimePartitioning:
    return bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field=table.partition_column
    )


class BigQueryWarehouse:
    def __init__(self, client: bigquery.Client, table: WarehouseTable, max_in_flight: int = 20):
        self.client = client
        self.table = table
        self.table_id = f"{client.project}.{table.qualified_name}"
        self.max_in_flight = max_in_flight

    def ensure_table(self) -> None:
        table = bigquery.Table(self.table_id, schema=bigquery_schema(self.table))
        table.time_partitioning = day_partitioning(self.table)
        table.clustering_fields = list(self.table.clustering) or None
        # Every query must name the days it reads: no accidental full scans of the history.
        table.require_partition_filter = True
        self.client.create_table(table, exists_ok=True)

    def replace_partitions(self, files_by_day: dict[dt.date, list[str]]) -> int:
        """Make each day's rows exactly those of its clean Parquet files; returns rows loaded."""
        self.ensure_table()
        in_flight: collections.deque[bigquery.LoadJob | bigquery.QueryJob] = collections.deque()
        loaded = 0
        for day in sorted(files_by_day):
            # Jobs start when submitted; result() only waits, so this keeps a window running.
            in_flight.append(self._replace_day(day, files_by_day[day]))
            if len(in_flight) >= self.max_in_flight:
                loaded += _rows_loaded(in_flight.popleft())
        while in_flight:
            loaded += _rows_loaded(in_flight.popleft())
        return loaded

    def _replace_day(self, day: dt.date, uris: list[str]) -> bigquery.LoadJob | bigquery.QueryJob:
        job_id_prefix = f"replace_{self.table.name}_{day:%Y%m%d}_"
        if not uris:
            return self.client.query(
                f"DELETE FROM `{self.table_id}` WHERE {self.table.partition_column} = @day",
                job_config=bigquery.QueryJobConfig(
                    query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", day)]
                ),
                job_id_prefix=job_id_prefix,
            )
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            schema=bigquery_schema(self.table),
            time_partitioning=day_partitioning(self.table),
            clustering_fields=list(self.table.clustering) or None,
        )
        return self.client.load_table_from_uri(
            uris, f"{self.table_id}${day:%Y%m%d}", job_config=config, job_id_prefix=job_id_prefix
        )

    def partition_stats(
        self, first: dt.date, last: dt.date, violations: dict[str, str]
    ) -> dict[str, int]:
        """Rows of the range ("rows"), and for each named SQL predicate the rows breaking it."""
        counts = "".join(
            f", COUNTIF(NOT ({predicate})) AS `{name}`" for name, predicate in violations.items()
        )
        job = self._query_range(
            f"SELECT COUNT(*) AS `rows`{counts} FROM `{self.table_id}` "
            f"WHERE {self.table.partition_column} BETWEEN @first AND @last",
            first,
            last,
        )
        row = next(iter(job.result()))
        return {"rows": row["rows"], **{name: row[name] for name in violations}}

    def rows_by_partition(self, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        key = self.table.partition_column
        job = self._query_range(
            f"SELECT {key} AS day, COUNT(*) AS row_count FROM `{self.table_id}` "
            f"WHERE {key} BETWEEN @first AND @last GROUP BY 1",
            first,
            last,
        )
        return {row["day"]: row["row_count"] for row in job.result()}

    def read_range(self, first: dt.date, last: dt.date) -> pa.Table:
        columns = ", ".join(self.table.column_names)
        job = self._query_range(
            f"SELECT {columns} FROM `{self.table_id}` WHERE {self.table.partition_column} BETWEEN @first AND @last",
            first,
            last,
        )
        return job.to_arrow()

    def _query_range(self, sql: str, first: dt.date, last: dt.date) -> bigquery.QueryJob:
        """`sql` with its @first and @last DATE parameters."""
        return self.client.query(
            sql,
            job_config=bigquery.QueryJobConfig(
                query_parameters=[
                    bigquery.ScalarQueryParameter("first", "DATE", first),
                    bigquery.ScalarQueryParameter("last", "DATE", last),
                ]
            ),
        )


def _rows_loaded(job: bigquery.LoadJob | bigquery.QueryJob) -> int:
    job.result()  # raises the job's error, naming the day through its job id
    return (job.output_rows or 0) if isinstance(job, bigquery.LoadJob) else 0
