"""The local warehouse: `stock_raw.daily_prices` in a DuckDB file, replaced per partition."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from stock_platform.failpoints import failpoint
from stock_platform.warehouse.schema import COLUMN_NAMES, duckdb_create_table_sql


class DuckDBWarehouse:
    def __init__(self, path: Path, raw_dataset: str, lock_timeout_s: float = 600.0):
        self.path = Path(path)
        self.table = f"{raw_dataset}.daily_prices"
        self.raw_dataset = raw_dataset
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection; waits (with backoff) while another process holds the file lock,
        since DuckDB allows one writing process at a time.

        The pipeline always uses the default (read-write) configuration: within one process
        DuckDB shares the database between connections only if their configurations match, and
        the dbt adapter may hold one (dagster-dbt fetches row counts in-process). `read_only`
        is for other processes that only read (the CLI's summary)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.2
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
        try:
            yield con
        finally:
            con.close()

    def replace_partitions(self, files_by_day: dict[dt.date, list[str]]) -> int:
        """Atomically make each day's rows exactly the rows of its clean Parquet files.

        Delete and insert run in one transaction: readers see the old or the new range, never a
        mix, and re-running the same range gives the same table.
        """
        first, last = min(files_by_day), max(files_by_day)
        files = [uri for day in sorted(files_by_day) for uri in files_by_day[day]]
        columns = ", ".join(f'"{name}"' for name in COLUMN_NAMES)
        with self.connect() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.raw_dataset}")
            con.execute(duckdb_create_table_sql(self.raw_dataset))
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    f"DELETE FROM {self.table} WHERE trade_date BETWEEN ? AND ?", [first, last]
                )
                inserted = 0
                if files:
                    inserted = con.execute(
                        f"INSERT INTO {self.table} ({columns}) "
                        f"SELECT {columns} FROM read_parquet(?) "
                        "WHERE trade_date BETWEEN ? AND ? ORDER BY trade_date, ticker",
                        [files, first, last],
                    ).fetchone()[0]
                failpoint("duckdb_warehouse.before_commit")  # deleted and inserted, not committed
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return inserted

    def partition_stats(self, first: dt.date, last: dt.date) -> dict[str, int]:
        """Row count and rows breaking `market_cap = close * listed_shares`, for checks."""
        with self.connect() as con:
            rows, bad_cap = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE market_cap <> close * listed_shares) "
                f"FROM {self.table} WHERE trade_date BETWEEN ? AND ?",
                [first, last],
            ).fetchone()
        return {"rows": rows, "market_cap_mismatches": bad_cap}
