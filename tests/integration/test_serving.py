"""The serving domain against a real PostgreSQL (the embedded server, started for this module in its
own data dir and stopped at its end) and a DuckDB warehouse holding the marts it publishes.

Checked: a range publishes exactly the warehouse's rows (and stock_latest each ticker's latest);
re-running changes nothing; changed, emptied and vanished days converge; a publish killed inside
its transaction leaves the previous rows and a re-run converges; a reader polling while ranges
are republished never sees a day partly old and partly new; the reader role can only SELECT; the
three reads have indexes; the database password reaches no log, error or event.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import psycopg
import pytest
from fixtures.platform import REFERENCE_RANGE

from stock_platform.cli import plan_runs, select_specs, summaries
from stock_platform.definitions import defs as definitions
from stock_platform.defs.serving import publishing
from stock_platform.defs.serving.tables import DAILY_METRICS, FEATURES, MARKET_SUMMARY, WEB_TRAFFIC
from stock_platform.platform import settings as platform_settings
from stock_platform.platform.calendars import SEOUL
from stock_platform.platform.instance import ensure_database, stop_postgres
from stock_platform.platform.resources.local import DuckDBWarehouseResource
from stock_platform.platform.serving import ServingDatabaseError, ServingDatabaseResource, connect_url
from stock_platform.platform.settings import PlatformSettings, parse
from stock_platform.platform.warehouse.duckdb import create_table_sql

TICKERS = ["000100", "000200", "000300", "000400", "000500"]
SESSIONS = [d.date() for d in pd.bdate_range("2024-04-01", "2024-04-12")]
DAYS = [d.date() for d in pd.date_range("2024-04-01", "2024-04-12")]
FIRST, LAST = "2024-04-01", "2024-04-12"
ASSETS = {
    "stock_daily_metrics": publishing.stock_daily_metrics,
    "market_daily_summary": publishing.market_daily_summary,
    "web_daily_traffic": publishing.web_daily_traffic,
}
KEYS = {"stock_daily_metrics": ["ticker", "trade_date"], "stock_latest": ["ticker"],
        "market_daily_summary": ["trade_date", "market"], "web_daily_traffic": ["log_date"]}
PASSWORD = "s3rv1ng-pa55w0rd-never-logged"


# the warehouse ----------------------------------------------------------------------------------
def marts(seed: int) -> dict[str, pd.DataFrame]:
    """Random mart rows (NULLs included) for SESSIONS and DAYS; `seed` picks the values."""
    rng = np.random.default_rng(seed)
    keys = pd.DataFrame([(day, ticker) for day in SESSIONS for ticker in TICKERS], columns=["trade_date", "ticker"])
    n = len(keys)

    def floats() -> np.ndarray:
        values = rng.normal(0, 0.05, n)
        values[rng.random(n) < 0.2] = np.nan
        return values

    metrics = keys.assign(
        name=[f"종목{t}" for t in keys["ticker"]], market=np.where(keys["ticker"] < "000300", "KOSPI", "KOSDAQ"),
        close=rng.integers(1_000, 90_000, n), volume=rng.integers(0, 10**7, n),
        market_cap=rng.integers(10**9, 10**14, n), daily_return=floats(), ma_5=floats(), ma_20=floats(),
        ma_60=floats(), volatility_20=floats(), high_52w=rng.integers(90_000, 99_000, n),
        low_52w=rng.integers(100, 900, n),
    )
    features = keys.assign(return_5d=floats(), return_20d=floats(), volume_ratio_20=floats(),
                           ma_ratio_5_20=floats(), pct_from_52w_high=floats())
    summary = metrics.groupby(["trade_date", "market"], as_index=False).agg(
        listings=("ticker", "size"), total_volume=("volume", "sum"))
    m = len(summary)
    summary = summary.assign(
        advancers=rng.integers(0, 3, m), decliners=rng.integers(0, 3, m), unchanged=rng.integers(0, 3, m),
        total_traded_value=rng.integers(10**9, 10**12, m), total_market_cap=rng.integers(10**12, 10**15, m),
        cap_weighted_return=rng.normal(0, 0.02, m),
    )
    k = len(DAYS)
    traffic = pd.DataFrame({
        "log_date": DAYS, "requests": rng.integers(10**4, 10**5, k), "page_views": rng.integers(10**3, 10**4, k),
        "unique_visitors": rng.integers(100, 1000, k), "sessions": rng.integers(100, 2000, k),
        "bounce_rate": rng.random(k), "avg_session_duration_s": rng.random(k) * 600,
        "bytes_sent": rng.integers(10**8, 10**10, k), "share_4xx": rng.random(k) / 10,
        "share_5xx": rng.random(k) / 100, "bot_request_share": rng.random(k) / 5,
    })
    return {"fct_daily_stock_metrics": metrics, "fct_stock_features": features,
            "market_daily_summary": summary, "web_daily_traffic": traffic}


def write_warehouse(path: Path, frames: dict[str, pd.DataFrame]) -> None:
    with duckdb.connect(str(path)) as con:
        for table in (DAILY_METRICS, FEATURES, MARKET_SUMMARY, WEB_TRAFFIC):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.dataset}")
            con.execute(f"DROP TABLE IF EXISTS {table.qualified_name}")
            con.execute(create_table_sql(table))
            frame = frames[table.name][table.column_names]  # noqa: F841 (read by DuckDB by name)
            con.execute(f"INSERT INTO {table.qualified_name} SELECT * FROM frame")


def expected(path: Path) -> dict[str, pd.DataFrame]:
    """What the serving tables must hold, computed by DuckDB from the warehouse."""
    extra = "return_5d, return_20d, volume_ratio_20, ma_ratio_5_20, pct_from_52w_high"
    with duckdb.connect(str(path), read_only=True) as con:
        web = "SELECT * FROM web_analytics.web_daily_traffic" if con.sql(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'web_daily_traffic'").fetchall() else None
        metrics = con.sql(
            f"SELECT m.*, {', '.join('f.' + c.strip() for c in extra.split(','))} "
            "FROM stock_analytics.fct_daily_stock_metrics m "
            "LEFT JOIN stock_analytics.fct_stock_features f USING (trade_date, ticker)"
        ).df()
        frames = {
            "stock_daily_metrics": metrics,
            "stock_latest": metrics.sort_values("trade_date").groupby("ticker").tail(1),
            "market_daily_summary": con.sql("SELECT * FROM stock_analytics.market_daily_summary").df(),
            "web_daily_traffic": con.sql(web).df() if web else pd.DataFrame({"log_date": []}),
        }
    return {name: normalized(name, frame) for name, frame in frames.items()}


def normalized(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        if column.endswith("_date"):
            frame[column] = pd.to_datetime(frame[column]).dt.date
        elif pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].astype("float64")
        elif pd.api.types.is_integer_dtype(frame[column]):
            frame[column] = frame[column].astype("int64")
    return frame.sort_values(KEYS[name]).reset_index(drop=True)


def serving_tables(url: str) -> dict[str, pd.DataFrame]:
    with psycopg.connect(url) as conn:
        frames = {}
        for name in KEYS:
            cursor = conn.execute(f"SELECT * FROM serving.{name}")
            frame = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
            for column in cursor.description:  # double precision: NaN for NULL, even if all are
                if column.type_code == psycopg.adapters.types["float8"].oid:
                    frame[column.name] = frame[column.name].astype("float64")
            frames[name] = normalized(name, frame)
    return frames


def assert_serving_equals_warehouse(url: str, warehouse: Path) -> None:
    actual, wanted = serving_tables(url), expected(warehouse)
    for name in KEYS:
        pd.testing.assert_frame_equal(actual[name], wanted[name][list(actual[name].columns)],
                                      check_exact=True, obj=name)


# the platform -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """A data dir with its own embedded server (stopped at the end) and warehouse."""
    data_dir = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STOCK_PLATFORM_DATA_DIR", str(data_dir))
        patch.delenv("SERVING_DATABASE_URL", raising=False)
        platform_settings.load.cache_clear()
        settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(data_dir)})
        url = ensure_database(settings, "serving")
        warehouse = data_dir / "warehouse.duckdb"
        write_warehouse(warehouse, marts(seed=1))
        try:
            with dg.instance_for_test() as instance:
                yield {"data_dir": data_dir, "url": url, "warehouse": warehouse, "instance": instance}
        finally:
            stop_postgres(settings)
            platform_settings.load.cache_clear()


@pytest.fixture(autouse=True)
def fresh_settings(platform):
    """The module's data dir for every test (the conftest's autouse fixture clears the cache)."""
    platform_settings.load.cache_clear()
    yield


def publish(platform, names=tuple(ASSETS), first=FIRST, last=LAST) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ASSETS[name] for name in names],
        resources={"warehouse": DuckDBWarehouseResource(path=str(platform["warehouse"])),
                   "serving_db": ServingDatabaseResource()},
        instance=platform["instance"],
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=True,
    )


def publish_stock_and_web(platform, first=FIRST, last=LAST) -> None:
    """The stock tables and the web table (two partitions definitions: two runs)."""
    publish(platform, ("stock_daily_metrics", "market_daily_summary"), first, last)
    publish(platform, ("web_daily_traffic",), first, last)


# tests ------------------------------------------------------------------------------------------
def test_a_range_publishes_exactly_the_warehouse_rows_and_rerunning_changes_nothing(platform):
    publish_stock_and_web(platform)
    assert_serving_equals_warehouse(platform["url"], platform["warehouse"])
    before = serving_tables(platform["url"])
    assert len(before["stock_daily_metrics"]) == len(SESSIONS) * len(TICKERS)
    assert len(before["stock_latest"]) == len(TICKERS)
    publish_stock_and_web(platform)
    after = serving_tables(platform["url"])
    for name in KEYS:
        pd.testing.assert_frame_equal(after[name], before[name], check_exact=True, obj=name)


def test_changed_emptied_and_vanished_days_converge(platform):
    publish_stock_and_web(platform)
    frames = marts(seed=2)  # every value changes
    metrics = frames["fct_daily_stock_metrics"]
    last_two = metrics["trade_date"] >= SESSIONS[-2]
    # 000500 stops trading two sessions before the end: its latest row moves back.
    dropped = last_two & (metrics["ticker"] == "000500")
    frames["fct_daily_stock_metrics"] = metrics[~dropped]
    frames["fct_stock_features"] = frames["fct_stock_features"][~dropped.to_numpy()]
    # The last day is emptied for the market summary, and for the web traffic.
    summary = frames["market_daily_summary"]
    frames["market_daily_summary"] = summary[summary["trade_date"] != SESSIONS[-1]]
    traffic = frames["web_daily_traffic"]
    frames["web_daily_traffic"] = traffic[traffic["log_date"] != DAYS[-1]]
    write_warehouse(platform["warehouse"], frames)
    publish_stock_and_web(platform, first="2024-04-08", last=LAST)
    # Only the window was republished: the days before it keep seed 1's rows, so compare the window.
    actual = serving_tables(platform["url"])
    wanted = expected(platform["warehouse"])
    window = dt.date(2024, 4, 8)
    for name, column in (("stock_daily_metrics", "trade_date"), ("market_daily_summary", "trade_date"),
                         ("web_daily_traffic", "log_date")):
        got = actual[name][actual[name][column] >= window].reset_index(drop=True)
        want = wanted[name][wanted[name][column] >= window].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want[list(got.columns)], check_exact=True, obj=name)
    latest = actual["stock_latest"].set_index("ticker")["trade_date"].to_dict()
    assert latest["000500"] == SESSIONS[-3] and latest["000100"] == SESSIONS[-1]
    assert DAYS[-1] not in set(actual["web_daily_traffic"]["log_date"])
    # A full republish makes every table the warehouse's again.
    publish_stock_and_web(platform)
    assert_serving_equals_warehouse(platform["url"], platform["warehouse"])


def test_a_ticker_gone_from_the_warehouse_leaves_stock_latest(platform):
    frames = marts(seed=3)
    extra = frames["fct_daily_stock_metrics"].iloc[:1].assign(ticker="000900", trade_date=SESSIONS[-1])
    with_extra = {**frames, "fct_daily_stock_metrics": pd.concat([frames["fct_daily_stock_metrics"], extra])}
    write_warehouse(platform["warehouse"], with_extra)
    publish(platform, ("stock_daily_metrics",))
    assert "000900" in set(serving_tables(platform["url"])["stock_latest"]["ticker"])
    write_warehouse(platform["warehouse"], frames)
    publish(platform, ("stock_daily_metrics",), first=SESSIONS[-1].isoformat(), last=SESSIONS[-1].isoformat())
    assert "000900" not in set(serving_tables(platform["url"])["stock_latest"]["ticker"])


def day_totals(conn: psycopg.Connection) -> dict[dt.date, tuple[int, int]]:
    rows = conn.execute(
        "SELECT trade_date, count(*), sum(close) FROM serving.stock_daily_metrics GROUP BY 1"
    ).fetchall()
    return {day: (count, int(total)) for day, count, total in rows}


def test_readers_never_see_a_day_partly_old_and_partly_new(platform):
    versions = []
    for seed in (4, 5):
        write_warehouse(platform["warehouse"], marts(seed=seed))
        publish(platform, ("stock_daily_metrics",))
        with psycopg.connect(platform["url"]) as conn:
            versions.append(day_totals(conn))
    assert all(versions[0][day] != versions[1][day] for day in SESSIONS)
    seen, stop = [], threading.Event()

    def poll() -> None:
        with psycopg.connect(platform["url"], autocommit=True) as conn:
            while not stop.is_set():
                seen.append(day_totals(conn))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for seed in (4, 5, 4, 5):
            write_warehouse(platform["warehouse"], marts(seed=seed))
            publish(platform, ("stock_daily_metrics",))
    finally:
        stop.set()
        reader.join()
    assert len(seen) > 10
    for snapshot in seen:
        assert snapshot in versions, "a reader saw a mix of two publishes"


def test_a_killed_publish_leaves_the_previous_rows_and_a_rerun_converges(platform, tmp_path):
    write_warehouse(platform["warehouse"], marts(seed=6))
    publish(platform, ("stock_daily_metrics",))
    with psycopg.connect(platform["url"]) as conn:
        old = day_totals(conn)
    write_warehouse(platform["warehouse"], marts(seed=7))
    marker = tmp_path / "marker"
    script = (
        "import dagster as dg\n"
        "from stock_platform.defs.serving import publishing\n"
        "from stock_platform.platform.resources.local import DuckDBWarehouseResource\n"
        "from stock_platform.platform.serving import ServingDatabaseResource\n"
        f"dg.materialize([publishing.stock_daily_metrics], resources={{'warehouse': "
        f"DuckDBWarehouseResource(path={str(platform['warehouse'])!r}), 'serving_db': ServingDatabaseResource()}},"
        f" tags={{'dagster/asset_partition_range_start': {FIRST!r}, 'dagster/asset_partition_range_end': {LAST!r}}})\n"
    )
    env = {**os.environ, "STOCK_PLATFORM_FAILPOINT": "serving.before_commit:serving.stock_daily_metrics",
           "STOCK_PLATFORM_FAILPOINT_MARKER": str(marker)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert process.poll() is None, "the publish ended before its failpoint"
            assert time.monotonic() < deadline, "the publish never reached its failpoint"
            time.sleep(0.2)
        with psycopg.connect(platform["url"]) as conn:
            assert day_totals(conn) == old  # the new rows are copied in but not committed
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    with psycopg.connect(platform["url"]) as conn:
        # The server ends the dead client's transaction: its locks go, its rows never show.
        deadline = time.monotonic() + 30
        while conn.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                           "WHERE c.relname = 'stock_daily_metrics' AND l.mode = 'ShareRowExclusiveLock'"
                           ).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert day_totals(conn) == old
    publish(platform, ("stock_daily_metrics",))
    assert_serving_equals_warehouse_for(platform, "stock_daily_metrics")


def assert_serving_equals_warehouse_for(platform, name: str) -> None:
    actual, wanted = serving_tables(platform["url"])[name], expected(platform["warehouse"])[name]
    pd.testing.assert_frame_equal(actual, wanted[list(actual.columns)], check_exact=True, obj=name)


def test_the_reader_role_can_only_select(platform):
    publish(platform, ("web_daily_traffic",))
    with psycopg.connect(platform["url"]) as conn:
        conn.execute("SET ROLE serving_reader")
        assert conn.execute("SELECT count(*) FROM serving.web_daily_traffic").fetchone()[0] > 0
        for statement in ("DELETE FROM serving.web_daily_traffic",
                          "INSERT INTO serving.stock_latest (ticker) VALUES ('x')",
                          "TRUNCATE serving.market_daily_summary",
                          "CREATE TABLE serving.other (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'serving'").fetchall()
    assert owners == [("serving_writer",)]


@pytest.mark.parametrize(("read", "index"), [
    ("SELECT * FROM serving.stock_latest WHERE ticker = '000100'", "stock_latest_pkey"),
    ("SELECT * FROM serving.stock_daily_metrics WHERE ticker = '000100' "
     "AND trade_date BETWEEN '2024-01-01' AND '2024-12-31' ORDER BY trade_date", "stock_daily_metrics_pkey"),
    ("SELECT * FROM serving.stock_daily_metrics WHERE trade_date = '2024-04-12'", "stock_daily_metrics_by_day"),
])
def test_each_read_has_an_index(platform, read, index):
    """The tables here are tiny, so the planner may prefer a scan: forbid it, and the read must
    still find its index (the benchmark shows the plans on a full-size table)."""
    publish(platform, ("stock_daily_metrics",))
    with psycopg.connect(platform["url"]) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {read}").fetchall())
    assert index in plan, plan


def test_migrations_are_versioned_and_applied_once(platform):
    publish(platform, ("web_daily_traffic",))
    with psycopg.connect(platform["url"]) as conn:
        assert conn.execute("SELECT version_num FROM serving_schema_version").fetchall() == [("0001",)]
        types = dict(conn.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'serving'"
        ).fetchall())
    postgres_type = {"DATE": "date", "STRING": "text", "INT64": "bigint", "FLOAT64": "double precision"}
    for table, serving in ((DAILY_METRICS, "stock_daily_metrics"), (FEATURES, "stock_daily_metrics"),
                           (DAILY_METRICS, "stock_latest"), (MARKET_SUMMARY, "market_daily_summary"),
                           (WEB_TRAFFIC, "web_daily_traffic")):
        for column in table.columns:
            assert types[f"{serving}.{column.name}"] == postgres_type[column.bigquery_type], (serving, column)


def test_the_database_password_reaches_no_log_error_or_event(platform, monkeypatch, capfd, caplog):
    # The embedded server trusts its Unix socket, so the password in the URL is accepted unread.
    url = psycopg.conninfo.make_conninfo(platform["url"], user="serving_user", password=PASSWORD)
    publish(platform, ("web_daily_traffic",))  # the schema and its roles exist
    with psycopg.connect(platform["url"], autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'serving_user'").fetchone():
            conn.execute(f"CREATE ROLE serving_user LOGIN PASSWORD '{PASSWORD}' IN ROLE serving_writer")
    monkeypatch.setenv("SERVING_DATABASE_URL", url)
    platform_settings.load.cache_clear()
    result = publish(platform, ("web_daily_traffic",))
    assert result.success
    # A URL the server refuses: the error names the server and the reason, not the password.
    with pytest.raises(ServingDatabaseError) as refused:
        connect_url(psycopg.conninfo.make_conninfo(url, dbname="no_such_database"))
    assert "no_such_database" in str(refused.value)
    events = platform["instance"].all_logs(result.run_id)
    out, err = capfd.readouterr()
    for where, text in (("stdout", out), ("stderr", err), ("log records", caplog.text),
                        ("events", "\n".join(repr(event) for event in events)),
                        ("error", str(refused.value) + repr(refused.value.__cause__))):
        assert PASSWORD not in text, where


def test_make_run_prints_what_the_serving_tables_hold_once_after_the_domains(platform):
    write_warehouse(platform["warehouse"], marts(seed=1))
    with duckdb.connect(str(platform["warehouse"])) as con:  # read by the web domain's summary
        con.execute("CREATE OR REPLACE TABLE web_analytics.web_top_pages_daily "
                    "(log_date DATE, rank BIGINT, path VARCHAR, page_views BIGINT, unique_visitors BIGINT)")
    publish_stock_and_web(platform)
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(platform["data_dir"])})
    runs = plan_runs(select_specs(definitions(), None), FIRST, LAST, dt.datetime(2024, 5, 1, tzinfo=SEOUL))
    assert len(runs) == 2 and all("serving" in run.groups for run in runs)  # the stock run and the web run
    output = summaries(settings, runs)
    headers = [line for line in output.splitlines() if re.fullmatch(r"[a-z_]+: \S+ \.\. \S+", line)]
    assert headers == [f"{group}: {FIRST} .. {LAST}" for group in ("stock_prices", "web_traffic", "serving")]
    tables = serving_tables(platform["url"])
    for name, column in (("stock_daily_metrics", "trade_date"), ("market_daily_summary", "trade_date"),
                         ("web_daily_traffic", "log_date")):
        rows, last_day = len(tables[name]), max(tables[name][column])
        assert f"serving.{name}".ljust(45) + f" {rows:>10,}  {last_day}" in output.splitlines(), output
    assert f"{'serving.stock_latest':45} {len(TICKERS):>10,}  (one row per ticker)" in output.splitlines()


def test_the_real_marts_publish_column_for_column(platform, reference_run, monkeypatch):
    """The marts dbt built in the reference `make run` (not this module's hand-made tables) publish
    to exactly their rows: the serving tables' column lists and types fit the real models."""
    reference = reference_run.get()
    warehouse = reference.data_dir / "warehouse.duckdb"
    settings = parse(PlatformSettings, {"STOCK_PLATFORM_DATA_DIR": str(platform["data_dir"])})
    monkeypatch.setenv("SERVING_DATABASE_URL", ensure_database(settings, "serving_reference"))
    platform_settings.load.cache_clear()
    first, last = REFERENCE_RANGE
    dg.materialize(
        [ASSETS["stock_daily_metrics"], ASSETS["market_daily_summary"]],
        resources={"warehouse": DuckDBWarehouseResource(path=str(warehouse)), "serving_db": ServingDatabaseResource()},
        instance=platform["instance"],
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )
    actual = serving_tables(os.environ["SERVING_DATABASE_URL"])
    wanted = expected(warehouse)
    assert len(wanted["stock_daily_metrics"]) > 10_000
    for name in ("stock_daily_metrics", "stock_latest", "market_daily_summary"):
        pd.testing.assert_frame_equal(actual[name], wanted[name][list(actual[name].columns)],
                                      check_exact=True, obj=name)
