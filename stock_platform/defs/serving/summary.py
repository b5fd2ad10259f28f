"""What `make run` prints for this domain after a run: what each serving table holds in
PostgreSQL for the run's days, read back from the serving database."""

from __future__ import annotations

import datetime as dt

import duckdb
from psycopg import sql

from stock_platform.defs.serving.tables import MARKET_DAILY_SUMMARY, STOCK_DAILY_METRICS, WEB_DAILY_TRAFFIC
from stock_platform.platform.serving import ServingDatabaseResource


def summary(con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> list[str]:
    """Rows and last day of each serving table within [first, last], and stock_latest's tickers
    (`con`, the warehouse, is not read: the serving database is)."""
    lines = [f"{'table':45} {'rows':>10}  last day"]
    with ServingDatabaseResource().connect() as conn:
        for table in (STOCK_DAILY_METRICS, MARKET_DAILY_SUMMARY, WEB_DAILY_TRAFFIC):
            column = sql.Identifier(table.date_column)
            rows, last_day = conn.execute(
                sql.SQL("SELECT count(*), max({}) FROM {} WHERE {} BETWEEN %s AND %s").format(
                    column, sql.Identifier("serving", table.name), column),
                [first, last],
            ).fetchall()[0]
            lines.append(f"{table.qualified_name:45} {rows:>10,}  {last_day or '-'}")
        [(tickers,)] = conn.execute("SELECT count(*) FROM serving.stock_latest").fetchall()
    lines.append(f"{'serving.stock_latest':45} {tickers:>10,}  (one row per ticker)")
    return lines
