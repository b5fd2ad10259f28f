"""The local warehouse: day-partitioned tables in a DuckDB file, replaced a range at a time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import tenacity

from stock_platform.platform.failpoints import failpoint
from stock_platform.platform.warehouse import WarehouseTable


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def base_tables(con: duckdb.DuckDBPyConnection, *schemas: str) -> list[tuple[str, str]]:
    """(schema, table) of the tables (not views) in `schemas`, in name order."""
    return con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE table_schema IN ({', '.join('?' for _ in schemas)}) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
        list(schemas),
    ).fetchall()


def create_table_sql(table: WarehouseTable) -> str:
    columns = ",\n  ".join(f'"{c.name}" {c.duckdb_type}' for c in table.columns)
    # No PRIMARY KEY: uniqueness is kept by the load (delete + insert of whole partitions) and
    # checked by dbt tests; an ART index would slow big backfills.
    return f"CREATE TABLE IF NOT EXISTS {table.qualified_name} (\n  {columns}\n)"


class DuckDBWarehouse:
    def __init__(self, path: Path | str, lock_timeout_s: float = 600.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection; waits (with jittered backoff) while another process holds the file
        lock, since DuckDB allows one writing process at a time.

        The pipeline always uses the default (read-write) configuration: within one process
        DuckDB shares the database between connections only if their configurations match, and
        the dbt adapter may hold one. `read_only` is for other processes that only read."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_lock_conflict),
            wait=tenacity.wait_random_exponential(multiplier=0.2, max=5.0),
            stop=tenacity.stop_after_delay(self.lock_timeout_s),
            reraise=True,
        )
        con = retrying(duckdb.connect, str(self.path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def replace_partitions(self, table: WarehouseTable, files_by_day: dict[dt.date, list[str]]) -> int:
        """Atomically make each day's rows exactly the rows of its clean Parquet files (a day
        without files: no rows); returns the rows inserted.

        Delete and insert run in one transaction: readers see the old or the new range, never a
        mix, and re-running the same range gives the same table."""
        first, last = min(files_by_day), max(files_by_day)
        files = [uri for day in sorted(files_by_day) for uri in files_by_day[day]]
        columns = ", ".join(f'"{name}"' for name in table.column_names)
        key = table.partition_column
        order = ", ".join([key, *table.clustering])
        with self.connect() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.dataset}")
            con.execute(create_table_sql(table))
            # Parquet timestamps are UTC instants: a TIMESTAMP column holds them in UTC, whatever
            # the machine's zone.
            con.execute("SET TimeZone = 'UTC'")
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    f"DELETE FROM {table.qualified_name} WHERE {key} BETWEEN ? AND ?", [first, last]
                )
                inserted = 0
                if files:
                    inserted = con.execute(
                        f"INSERT INTO {table.qualified_name} ({columns}) "
                        f"SELECT {columns} FROM read_parquet(?) "
                        f"WHERE {key} BETWEEN ? AND ? ORDER BY {order}",
                        [files, first, last],
                    ).fetchall()[0][0]
                failpoint("duckdb_warehouse.before_commit")  # deleted and inserted, not committed
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return inserted

    def partition_stats(
        self, table: WarehouseTable, first: dt.date, last: dt.date, violations: dict[str, str]
    ) -> dict[str, int]:
        """Rows of the range ("rows"), and for each named SQL predicate the rows breaking it."""
        counts = "".join(
            f", count(*) FILTER (WHERE NOT ({predicate}))" for predicate in violations.values()
        )
        with self.connect() as con:
            row = con.execute(
                f"SELECT count(*){counts} FROM {table.qualified_name} "
                f"WHERE {table.partition_column} BETWEEN ? AND ?",
                [first, last],
            ).fetchall()[0]
        return {"rows": row[0], **dict(zip(violations, row[1:]))}

    def rows_by_partition(self, table: WarehouseTable, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        key = table.partition_column
        with self.connect() as con:
            rows = con.execute(
                f"SELECT {key}, count(*) FROM {table.qualified_name} "
                f"WHERE {key} BETWEEN ? AND ? GROUP BY 1",
                [first, last],
            ).fetchall()
        return dict(rows)

    def read_range(self, table: WarehouseTable, first: dt.date, last: dt.date) -> pa.Table:
        columns = ", ".join(table.column_names)
        with self.connect() as con:
            return con.sql(
                f"SELECT {columns} FROM {table.qualified_name} WHERE {table.partition_column} BETWEEN ? AND ?",
                params=[first, last],
            ).to_arrow_table()
