"""What `make run` prints for this domain after a run: rows per table and the last day's top
movers, read back from the local warehouse."""

from __future__ import annotations

import datetime as dt

import duckdb

from stock_platform.defs.stock_prices.settings import stock_settings
from stock_platform.platform.warehouse.duckdb import base_tables


def summary(con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> list[str]:
    settings = stock_settings()
    raw, analytics = settings.raw_dataset, settings.analytics_dataset
    tables = base_tables(con, raw, analytics)
    lines = [f"{'table':45} {'rows':>10}  date range"]
    for schema, table in tables:
        rows, low, high = con.execute(
            f"SELECT count(*), min(trade_date), max(trade_date) FROM {schema}.{table}"
        ).fetchall()[0]
        lines.append(f"{schema + '.' + table:45} {rows:>10,}  {low} .. {high}")
    if (analytics, "top_movers_daily") not in tables:
        return lines
    movers = con.execute(
        f"SELECT trade_date, market, direction, rank, ticker, name, change_pct, close "
        f"FROM {analytics}.top_movers_daily "
        f"WHERE trade_date = (SELECT max(trade_date) FROM {analytics}.top_movers_daily "
        "WHERE trade_date <= ?) AND rank <= 3 ORDER BY market, direction, rank",
        [last],
    ).fetchall()
    if movers:
        lines += ["", f"Top movers on {movers[0][0]} (top 3 per market and direction):"]
        for _, market, direction, rank, ticker, name, pct, close in movers:
            lines.append(
                f"  {market:7} {direction:6} #{rank} {ticker} {name}  {pct:+.2f}%  close {close:,}"
            )
    return lines
