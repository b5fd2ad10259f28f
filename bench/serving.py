"""(s) The serving database's read path, as an application reads it: through psycopg against the
embedded PostgreSQL server, on a full-size serving.stock_daily_metrics published by the platform's
own publish (one transaction: DELETE the window, COPY, stock_latest refreshed), and the time of a
daily publish on that full table (a day's rows and stock_latest, in O(window)).

    latest:  SELECT * FROM serving.stock_latest WHERE ticker = %s                 (10,000 lookups)
    history: one ticker's rows over one year, ORDER BY trade_date                 (1,000 reads)

Each read is timed alone (a prepared statement on one connection, as a pooled application runs
it); EXPLAIN of each shows the index it uses.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

TICKERS = 2_700  # about the KRX listings
FIRST, LAST = dt.date(2023, 1, 2), dt.date(2024, 12, 30)  # two years of sessions
LATEST_SQL = "SELECT * FROM serving.stock_latest WHERE ticker = %s"
HISTORY_SQL = (
    "SELECT * FROM serving.stock_daily_metrics WHERE ticker = %s AND trade_date BETWEEN %s AND %s "
    "ORDER BY trade_date"
)


def synthetic_rows(seed: int = 7) -> pa.Table:
    """TICKERS listings on every weekday of [FIRST, LAST], in the serving table's columns."""
    from stock_platform.defs.serving.tables import STOCK_DAILY_METRICS

    rng = np.random.default_rng(seed)
    days = pd.bdate_range(FIRST, LAST).date
    tickers = np.array([f"{100_000 + i:06d}" for i in range(TICKERS)])
    n = len(days) * TICKERS
    columns: dict[str, np.ndarray] = {
        "trade_date": np.repeat(days, TICKERS), "ticker": np.tile(tickers, len(days)),
        "name": np.tile(np.array([f"종목{t}" for t in tickers]), len(days)),
        "market": np.tile(np.where(np.arange(TICKERS) % 3 == 0, "KOSPI", "KOSDAQ"), len(days)),
    }
    for column in STOCK_DAILY_METRICS.marts[0].columns + STOCK_DAILY_METRICS.marts[1].columns:
        if column.name in columns:
            continue
        if column.bigquery_type == "INT64":
            columns[column.name] = rng.integers(100, 10**9, n)
        else:
            columns[column.name] = rng.normal(0, 0.05, n)
    names = STOCK_DAILY_METRICS.column_names
    return pa.table({name: columns[name] for name in names})


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ms = sorted(sample / 1e6 for sample in samples_ns)
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 3),
            "max_ms": round(ms[-1], 3), "reads": len(ms)}


def bench_serving(data_dir: Path, lookups: int = 10_000, histories: int = 1_000) -> dict:
    from stock_platform.defs.serving.publishing import MIGRATIONS, refresh_latest_statements
    from stock_platform.platform.instance import ensure_database, stop_postgres
    from stock_platform.platform.serving import connect_url, migrate, publish
    from stock_platform.platform.settings import PlatformSettings, parse

    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(data_dir)})
    url = ensure_database(settings, "serving")
    try:
        migrate(lambda: connect_url(url), MIGRATIONS)
        rows = synthetic_rows()
        window = {"first": FIRST, "last": LAST}
        started = time.perf_counter()
        with psycopg.connect(url) as conn:
            publish(conn, "serving.stock_daily_metrics", "trade_date", FIRST, LAST, rows,
                    [(statement, window) for statement in refresh_latest_statements()])
        publish_s = time.perf_counter() - started
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE serving.stock_daily_metrics")
            conn.execute("VACUUM ANALYZE serving.stock_latest")
        # A daily run on the full table: one day replaced, stock_latest refreshed for its tickers
        # only (O(window), not O(history)).
        day = {"first": LAST, "last": LAST}
        last_day = rows.filter(pc.equal(rows["trade_date"], pa.scalar(LAST, pa.date32())))
        daily = []
        for _ in range(5):
            began = time.perf_counter()
            with psycopg.connect(url) as conn:
                publish(conn, "serving.stock_daily_metrics", "trade_date", LAST, LAST, last_day,
                        [(statement, day) for statement in refresh_latest_statements()])
            daily.append(time.perf_counter() - began)
        rng = np.random.default_rng(11)
        tickers = [f"{100_000 + i:06d}" for i in rng.integers(0, TICKERS, lookups)]
        ends = pd.bdate_range(FIRST + dt.timedelta(days=365), LAST).date
        with psycopg.connect(url, autocommit=True) as conn:
            plans = {name: [line for (line,) in conn.execute(f"EXPLAIN {sql}", args).fetchall()]
                     for name, sql, args in (("latest", LATEST_SQL, ["100000"]),
                                             ("history", HISTORY_SQL, ["100000", dt.date(2024, 1, 2), LAST]))}
            upsert = refresh_latest_statements()[0].as_string(conn)
            plans["stock_latest refresh of a daily run"] = [
                line for (line,) in conn.execute(f"EXPLAIN {upsert}", day).fetchall()]
            latest = []
            for ticker in tickers:
                began = time.perf_counter_ns()
                conn.execute(LATEST_SQL, [ticker], prepare=True).fetchall()
                latest.append(time.perf_counter_ns() - began)
            history, history_rows = [], []
            for ticker, end in zip(tickers[:histories], rng.choice(ends, histories)):
                began = time.perf_counter_ns()
                got = conn.execute(HISTORY_SQL, [ticker, end - dt.timedelta(days=364), end], prepare=True).fetchall()
                history.append(time.perf_counter_ns() - began)
                history_rows.append(len(got))
    finally:
        stop_postgres(settings)
    return {
        "table_rows": rows.num_rows, "tickers": TICKERS, "publish_s": round(publish_s, 2),
        "daily_publish_ms": round(statistics.median(daily) * 1000, 1), "daily_rows": last_day.num_rows,
        "latest": percentiles(latest),
        "history": {**percentiles(history), "rows_per_read": round(statistics.mean(history_rows), 1)},
        "plans": plans,
        "index_scans": all("Index Scan" in "\n".join(plan) for plan in plans.values()),
    }


def render_serving(s: dict, targets: dict[str, str]) -> list[str]:
    lat, hist = s["latest"], s["history"]
    lines = [
        "",
        "## (s) serving: the read path of serving.stock_daily_metrics and stock_latest (PostgreSQL)",
        "",
        f"The embedded server, through psycopg (prepared statements, one connection); "
        f"serving.stock_daily_metrics holds {s['table_rows']:,} rows ({s['tickers']:,} tickers x two years), "
        f"published by the platform's publish in **{s['publish_s']:.1f} s** (one transaction, COPY, "
        "stock_latest refreshed). A daily run on that table (one day of "
        f"{s['daily_rows']:,} rows replaced, stock_latest refreshed for its tickers) takes "
        f"**{s['daily_publish_ms']:.0f} ms** (median of 5).",
        "",
        "| figure | p50 | p99 | max | target |",
        "|---|---|---|---|---|",
        f"| stock_latest lookup by ticker ({lat['reads']:,} reads) | {lat['p50_ms']} ms | **{lat['p99_ms']} ms** "
        f"| {lat['max_ms']} ms | {targets['s_latest']} |",
        f"| one ticker's one-year history ({hist['reads']:,} reads, {hist['rows_per_read']} rows each) "
        f"| {hist['p50_ms']} ms | **{hist['p99_ms']} ms** | {hist['max_ms']} ms | {targets['s_history']} |",
        "",
    ]
    for name, plan in s["plans"].items():
        lines += [f"EXPLAIN ({name}):", "", "```", *plan, "```", ""]
    return lines
