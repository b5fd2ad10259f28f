"""The gcp warehouse: day-partitioned tables in BigQuery, replaced a range of days at a time.

A range is replaced in a bounded number of jobs, whatever its length (a backfill of the default
history is about 1,700 days, more than the per-table daily limit on load jobs):
  1. its clean Parquet files are loaded into a staging table of its own (a copy of the table's
     schema that expires after a day), one load job per `MAX_URIS_PER_LOAD` files;
  2. one query job checks that every staged row belongs to a day of the range (else nothing is
     replaced and the error names the days);
  3. one query job, in one transaction, deletes the range's days from the table and inserts the
     staged rows. Readers see all the old days or all the new ones; a day without files (market
     closed) ends up empty.
The staging table is dropped at the end. The table owns its schema, partitioning and clustering:
loads name none of them, so a later change to the table does not break them.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
from google.cloud import bigquery

from stock_platform.platform.warehouse import WarehouseTable

# BigQuery's limit on source URIs per load job.
MAX_URIS_PER_LOAD = 10_000
STAGING_LIFETIME = dt.timedelta(days=1)  # a crashed run's staging table goes by itself


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
    def __init__(self, client: bigquery.Client, table: WarehouseTable):
        self.client = client
        self.table = table
        self.table_id = f"{client.project}.{table.qualified_name}"

    def ensure_table(self) -> bigquery.Table:
        """The table, created from the contract if it does not exist yet."""
        table = bigquery.Table(self.table_id, schema=bigquery_schema(self.table))
        table.time_partitioning = day_partitioning(self.table)
        table.clustering_fields = list(self.table.clustering) or None
        # Every query must name the days it reads: no accidental full scans of the history.
        table.require_partition_filter = True
        return self.client.create_table(table, exists_ok=True)

    def replace_partitions(self, files_by_day: dict[dt.date, list[str]]) -> int:
        """Make each day's rows exactly those of its clean Parquet files; returns rows loaded."""
        if not files_by_day:
            return 0
        target = self.ensure_table()
        days = sorted(files_by_day)
        uris = [uri for day in days for uri in files_by_day[day]]
        run = uuid.uuid4().hex[:12]
        staging_id = f"{self.client.project}.{self.table.dataset}._staging_{self.table.name}_{run}"
        job_id_prefix = f"replace_{self.table.name}_{days[0]:%Y%m%d}_{days[-1]:%Y%m%d}_"
        loaded = 0
        try:
            if uris:
                staging = bigquery.Table(staging_id, schema=target.schema)
                staging.expires = dt.datetime.now(dt.UTC) + STAGING_LIFETIME
                self.client.create_table(staging)
                for start in range(0, len(uris), MAX_URIS_PER_LOAD):
                    job = self.client.load_table_from_uri(
                        uris[start : start + MAX_URIS_PER_LOAD],
                        staging_id,
                        job_config=bigquery.LoadJobConfig(
                            source_format=bigquery.SourceFormat.PARQUET,
                            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
                            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
                        ),
                        job_id_prefix=job_id_prefix,
                    )
                    job.result()  # raises the load's error (a file that does not fit the table)
                    loaded += job.output_rows or 0
            if uris:
                self.check_staged_days(staging_id, days, job_id_prefix)
            self.client.query(
                self.replace_script(staging_id if uris else None, [f.name for f in target.schema], days),
                job_id_prefix=job_id_prefix,
            ).result()
        finally:
            if uris:
                self.client.delete_table(staging_id, not_found_ok=True)
        return loaded

    def check_staged_days(self, staging_id: str, days: list[dt.date], job_id_prefix: str) -> None:
        """Fail, naming them, if staged rows fall outside `days` (a file holding rows of another
        day would otherwise replace that day's rows with a partial copy)."""
        key = self.table.partition_column
        outside = self.client.query(
            f"SELECT {key} AS day, COUNT(*) AS row_count FROM `{staging_id}` "
            f"WHERE {key} IS NULL OR {key} NOT IN UNNEST(@days) GROUP BY day ORDER BY day LIMIT 10",
            job_config=bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("days", "DATE", days)]),
            job_id_prefix=job_id_prefix,
        ).result()
        found = [f"{row['day'] or 'no ' + key} ({row['row_count']} rows)" for row in outside]
        if found:
            raise ValueError(
                f"{self.table.qualified_name}: the staged files hold rows of days outside the range "
                f"{days[0]}..{days[-1]}: {', '.join(found)}; nothing was replaced"
            )

    def replace_script(self, staging_id: str | None, columns: list[str], days: list[dt.date]) -> str:
        """The query job that swaps the staged rows in for `days`: one transaction. The days are
        DATE literals (typed values, so nothing to escape) bounded by BETWEEN, which lets BigQuery
        prune partitions; a script takes no query parameters on the BigQuery emulator the tests
        run it on."""
        key = self.table.partition_column
        first, last = (f"DATE '{day.isoformat()}'" for day in (days[0], days[-1]))
        listed = ", ".join(f"DATE '{day.isoformat()}'" for day in days)
        in_range = f"{key} BETWEEN {first} AND {last} AND {key} IN ({listed})"
        names = ", ".join(columns)
        statements = ["BEGIN TRANSACTION", f"DELETE FROM `{self.table_id}` WHERE {in_range}"]
        if staging_id:
            statements.append(f"INSERT INTO `{self.table_id}` ({names}) SELECT {names} FROM `{staging_id}`")
        statements.append("COMMIT TRANSACTION")
        return ";\n".join(statements) + ";"

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

