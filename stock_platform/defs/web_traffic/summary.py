"""What `make run` prints for this domain after a run: rows per table and the last day's traffic
and top pages, read back from the local warehouse."""

from __future__ import annotations

import datetime as dt

import duckdb

from stock_platform.defs.web_traffic.settings import web_settings
from stock_platform.platform.warehouse.duckdb import base_tables


def summary(con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> list[str]:
    settings = web_settings()
    raw, analytics = settings.raw_dataset, settings.analytics_dataset
    tables = base_tables(con, raw, analytics)
    lines = [f"{'table':45} {'rows':>10}"]
    for schema, table in tables:
        rows = con.execute(f"SELECT count(*) FROM {schema}.{table}").fetchall()[0][0]
        lines.append(f"{schema + '.' + table:45} {rows:>10,}")
    if (analytics, "web_daily_traffic") not in tables:
        return lines
    traffic = con.execute(
        f"SELECT log_date, requests, page_views, unique_visitors, sessions, bounce_rate, "
        f"bot_request_share FROM {analytics}.web_daily_traffic "
        "WHERE log_date BETWEEN ? AND ? ORDER BY log_date DESC LIMIT 1",
        [first, last],
    ).fetchall()
    if not traffic:
        return lines
    day, requests, views, visitors, sessions, bounce, bots = traffic[0]
    lines += [
        "",
        f"Traffic on {day}: {requests:,} requests, {views:,} page views, {visitors:,} visitors, "
        f"{sessions:,} sessions, bounce rate {_share(bounce)}, bot requests {_share(bots)}",
    ]
    pages = con.execute(
        f"SELECT rank, path, page_views, unique_visitors FROM {analytics}.web_top_pages_daily "
        "WHERE log_date = ? AND rank <= 5 ORDER BY rank",
        [day],
    ).fetchall()
    if pages:
        lines.append(f"Top pages on {day}:")
        lines += [f"  #{rank} {path}  {views:,} views, {visitors:,} visitors"
                  for rank, path, views, visitors in pages]
    return lines


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
