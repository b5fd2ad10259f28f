"""The gcp warehouse: `stock_raw.daily_prices` in BigQuery, replaced one day partition at a time.

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

from google.cloud import bigquery

from stock_platform.warehouse.schema import DAILY_PRICES_COLUMNS

TABLE = "daily_prices"
CLUSTERING = ["market", "ticker"]


def bigquery_schema() -> list[bigquery.SchemaField]:
    """The DESIGN.md contract as an explicit BigQuery schema (loads never infer types)."""
    return [
        bigquery.SchemaField(name, bq_type, description=description)
        for name, bq_type, _, description in DAILY_PRICES_COLUMNS
    ]


def day_partitioning() -> bigquery.TimePartitioning:
    return bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field="trade_date")


class BigQueryWarehouse:
    def __init__(self, client: bigquery.Client, raw_dataset: str, max_in_flight: int = 20):
        self.client = client
        self.table_id = f"{client.project}.{raw_dataset}.{TABLE}"
        self.max_in_flight = max_in_flight

    def ensure_table(self) -> None:
        table = bigquery.Table(self.table_id, schema=bigquery_schema())
        table.time_partitioning = day_partitioning()
        table.clustering_fields = CLUSTERING
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
        job_id_prefix = f"replace_{TABLE}_{day:%Y%m%d}_"
        if not uris:
            return self.client.query(
                f"DELETE FROM `{self.table_id}` WHERE trade_date = @day",
                job_config=bigquery.QueryJobConfig(
                    query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", day)]
                ),
                job_id_prefix=job_id_prefix,
            )
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            schema=bigquery_schema(),
            time_partitioning=day_partitioning(),
            clustering_fields=CLUSTERING,
        )
        return self.client.load_table_from_uri(
            uris, f"{self.table_id}${day:%Y%m%d}", job_config=config, job_id_prefix=job_id_prefix
        )

    def partition_stats(self, first: dt.date, last: dt.date) -> dict[str, int]:
        """Row count and rows breaking `market_cap = close * listed_shares`, for checks."""
        job = self.client.query(
            "SELECT COUNT(*) AS row_count, "
            "COUNTIF(market_cap != close * listed_shares) AS market_cap_mismatches "
            f"FROM `{self.table_id}` WHERE trade_date BETWEEN @first AND @last",
            job_config=bigquery.QueryJobConfig(
                query_parameters=[
                    bigquery.ScalarQueryParameter("first", "DATE", first),
                    bigquery.ScalarQueryParameter("last", "DATE", last),
                ]
            ),
        )
        row = next(iter(job.result()))
        return {"rows": row["row_count"], "market_cap_mismatches": row["market_cap_mismatches"]}


def _rows_loaded(job: bigquery.LoadJob | bigquery.QueryJob) -> int:
    job.result()  # raises the job's error, naming the day through its job id
    return (job.output_rows or 0) if isinstance(job, bigquery.LoadJob) else 0
