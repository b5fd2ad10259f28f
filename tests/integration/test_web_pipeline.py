"""The web traffic domain end to end through Dagster, from WEB_LOGS_SOURCE=files in a temp dir.

One module-scoped set of runs (Spark and dbt are slow): three delivered days (two of the synthetic
site's days, shrunk, plus a hand-written file of every edge case of the formats), run as one range,
then the same range again. Everything is compared with what the tests compute themselves from the
delivered lines: the warehouse rows and the rejected lines with the oracle parser
(fixtures/web_logs.py), the marts with fixtures/web_metrics.py. The last test searches everything
the runs left for the salt of visitor ids and for full client addresses.
"""

import contextlib
import datetime as dt
import io
import logging
import secrets

import dagster as dg
import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fixtures import web_metrics
from fixtures.data_go_kr import find_secret
from fixtures.platform import domain_job, local_definitions, settings_of
from fixtures.web_logs import parse_files

from stock_platform.defs.web_traffic.resources import LogFilesResource
from stock_platform.defs.web_traffic.schema import RAW, REJECTED
from stock_platform.defs.web_traffic.sources.synthetic_site import SyntheticSite
from stock_platform.platform.lake import Lake

TIMEZONE = "Asia/Seoul"
DAYS = [dt.date(2024, 3, 9), dt.date(2024, 3, 10), dt.date(2024, 3, 11)]  # Sat, Sun, Mon
MARKER = "SaltCanary"
SALT = f"{MARKER}-{secrets.token_hex(8)}"
WEB_TABLES = [
    "web_raw.access_logs", "web_analytics.fct_requests", "web_analytics.fct_sessions",
    "web_analytics.web_daily_traffic", "web_analytics.web_top_pages_daily", "web_analytics.dim_date",
    "web_analytics.dim_time", "web_analytics.dim_page", "web_analytics.dim_user_agent",
    "web_analytics.dim_referrer",
]

# Every edge case of the formats, delivered on DAYS[2] (Monday 2024-03-11, KST).
EDGE_CASES = "\r\n".join([
    # combined, escaped quote and backslash in the user agent, query string
    '203.0.113.7 - frank [11/Mar/2024:10:15:32 +0900] "GET /products/123?ref=mail HTTP/1.1" 200 5123 '
    '"https://www.google.com/search?q=x" "Mozilla/5.0 (X11; Linux x86_64) \\"quoted\\" back\\\\slash"',
    # the identical line again: two requests in the same second, both kept
    '203.0.113.7 - frank [11/Mar/2024:10:15:32 +0900] "GET /products/123?ref=mail HTTP/1.1" 200 5123 '
    '"https://www.google.com/search?q=x" "Mozilla/5.0 (X11; Linux x86_64) \\"quoted\\" back\\\\slash"',
    # common, '-' size, UTC offset, an empty query
    '2001:db8:85a3::8a2e:370:7334 - - [11/Mar/2024:01:15:32 +0000] "GET /index.html? HTTP/1.0" 304 -',
    # legacy (local time), IPv4-mapped IPv6, other escapes kept as written
    '::ffff:198.51.100.23 - - [2024-03-11 23:59:59] "GET /a/b\\x41.html" 200 99 "curl/8.5.0"',
    "",  # an empty line: skipped, but counted in line numbers
    # a TLS probe and a '-' request: kept, with NULL method, path, query and protocol
    '198.51.100.24 - - [11/Mar/2024:03:00:00 -0130] "\\x16\\x03\\x01\\x02\\x00" 400 0 "-" "-"',
    '198.51.100.25 - - [11/Mar/2024:04:00:00 +0900] "-" 408 - "-" "-"',
    # a crawler, an internal referrer
    '66.249.66.1 - - [11/Mar/2024:05:00:00 +0900] "GET /blog/post-1 HTTP/1.1" 200 2048 '
    '"https://www.example-shop.kr/" "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"',
    # rejected, one of each reason
    "garbage that is no log line",
    '999.1.1.1 - - [11/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 1 "-" "-"',
    '203.0.113.8 - - [31/Feb/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 1 "-" "-"',
    '203.0.113.8 - - [11/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 777 1 "-" "-"',
    '203.0.113.8 - - [11/Mar/2024:10:15:32 +0900] "GET / HTTP/1.1" 200 1k "-" "-"',
    '203.0.113.8 - - [10/Mar/2024:14:59:59 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',  # 23:59:59 KST the day before
]).encode() + b"\r\n203.0.113.9 - - [11/Mar/2024:10:00:00 +0900] \"GET /\xff HTTP/1.1\" 200 1 \"-\" \"-\"\r\n"


def delivered(day: dt.date) -> dict[str, bytes]:
    """The files the web servers deliver for `day`: the synthetic site's, plus edge cases."""
    files = SyntheticSite(11, 2000, TIMEZONE, ["www.example-shop.kr"]).day_files(day)
    if day == DAYS[2]:
        files["edge-cases.log"] = EDGE_CASES
    return files


def web_tables(path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {name: con.execute(f"SELECT * FROM {name}").df() for name in WEB_TABLES}


def by_key(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.fixture(scope="module")
def platform(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("web_platform")
    logs = root / "delivered"
    for day in DAYS:
        folder = logs / day.isoformat()
        folder.mkdir(parents=True)
        for name, data in delivered(day).items():
            (folder / name).write_bytes(data)
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(pytest.MonkeyPatch.context())
        env.setenv("STOCK_PLATFORM_DATA_DIR", str(root / "data"))  # for dbt's profile
        env.setenv("WEB_IP_SALT", SALT)
        settings = settings_of(root / "data")
        defs = local_definitions(settings, web_log_source=LogFilesResource(uri=str(logs)))
        (root / "instance").mkdir()
        instance = stack.enter_context(dg.instance_for_test(temp_dir=str(root / "instance")))
        logging.getLogger().addHandler(handler)
        stack.callback(logging.getLogger().removeHandler, handler)
        stack.enter_context(contextlib.redirect_stdout(captured))
        stack.enter_context(contextlib.redirect_stderr(captured))
        job = domain_job(defs, "web_traffic")
        tags = {"dagster/asset_partition_range_start": DAYS[0].isoformat(),
                "dagster/asset_partition_range_end": DAYS[-1].isoformat()}
        first = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        warehouse = root / "data" / "warehouse.duckdb"
        tables_after_first = web_tables(warehouse) if first.success else None
        second = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        yield {
            "root": root, "settings": settings, "instance": instance, "results": [first, second],
            "warehouse": warehouse, "tables_after_first": tables_after_first,
            "captured": captured.getvalue(), "spark_conf": dict(spark.sparkContext.getConf().getAll()),
        }


@pytest.fixture(scope="module")
def expected():
    """What the delivered lines say, computed by the tests' own parser."""
    rows, rejected = [], []
    for day in DAYS:
        day_rows, day_rejected = parse_files(delivered(day), day, TIMEZONE, SALT.encode())
        rows += day_rows
        rejected += [{**line, "day": day} for line in day_rejected]
    return {"rows": rows, "rejected": rejected}


def test_the_runs_succeed(platform):
    for result in platform["results"]:
        failures = [event.event_specific_data.error.to_string() for event in result.all_events
                    if event.event_type_value == "STEP_FAILURE"]
        assert result.success, failures


def test_the_raw_lake_holds_the_files_byte_for_byte(platform):
    lake = Lake(platform["settings"].lake_root)
    for day in DAYS:
        manifest = lake.published(RAW, day)
        stored = {file["name"]: lake.read_bytes(f"{lake.partition_dir(RAW, day)}/{file['file']}")
                  for file in manifest.details["files"]}
        assert stored == delivered(day)


def records(warehouse, sql: str) -> list[dict]:
    """Rows as dicts of Python values (dates, naive UTC datetimes, ints, None)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def test_the_warehouse_holds_exactly_the_parsed_lines(platform, expected):
    key = lambda row: (row["log_date"], row["source_file"], row["line_number"])  # noqa: E731
    actual = sorted(records(platform["warehouse"], "SELECT * FROM web_raw.access_logs"), key=key)
    assert actual == sorted(expected["rows"], key=key)
    edge = [row for row in actual if row["source_file"] == "edge-cases.log"]
    assert [row["line_number"] for row in edge] == [1, 2, 3, 4, 6, 7, 8]  # line 5 is empty
    assert edge[0]["user_agent"] == 'Mozilla/5.0 (X11; Linux x86_64) "quoted" back\\slash'
    assert (edge[2]["query"], edge[4]["method"], edge[5]["path"]) == ("", None, None)
    assert edge[3]["path"] == "/a/b\\x41.html" and edge[3]["client_prefix"] == "198.51.100.0/24"
    assert edge[4]["ts"] == dt.datetime(2024, 3, 11, 4, 30)  # 03:00 at -01:30


def test_rejected_lines_are_quarantined_with_their_reason_and_counted(platform, expected):
    lake = Lake(platform["settings"].lake_root)
    found = []
    for day in DAYS:
        for uri in lake.files(REJECTED, day):
            found += [{**row, "day": day} for row in pq.read_table(uri).to_pylist()]
    key = lambda row: (row["day"], row["source_file"], row["line_number"])  # noqa: E731
    assert sorted(found, key=key) == sorted(expected["rejected"], key=key)
    edge = sorted((row["line_number"], row["reason"]) for row in found if row["source_file"] == "edge-cases.log")
    assert edge == [(9, "unparseable_line"), (10, "bad_client"), (11, "bad_timestamp"), (12, "bad_status"),
                    (13, "bad_size"), (14, "outside_partition_day"), (15, "invalid_utf8")]
    counts: dict[str, int] = {}
    for row in expected["rejected"]:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    result = platform["results"][0]
    (check,) = [e.asset_check_evaluation_data for e in result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
                and e.asset_check_evaluation_data.check_name == "no_rejected_lines"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["by_reason"].value == counts


def assert_same(actual: list[dict], wanted: list[dict], what: str) -> None:
    assert len(actual) == len(wanted), what
    for got, row in zip(actual, wanted):
        for column, value in row.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, rel=1e-9), (what, column, row)
            else:
                assert got[column] == value, (what, column, row)


def test_the_marts_equal_the_metrics_recomputed_from_the_lines(platform, expected):
    rows, warehouse = expected["rows"], platform["warehouse"]
    traffic = web_metrics.daily_traffic(rows, TIMEZONE)
    assert_same(records(warehouse, "SELECT * FROM web_analytics.web_daily_traffic ORDER BY log_date"),
                [{"log_date": day, **traffic[day]} for day in sorted(traffic)], "web_daily_traffic")
    assert_same(records(warehouse, "SELECT * FROM web_analytics.fct_sessions "
                                   "ORDER BY log_date, visitor_id, session_start"),
                web_metrics.sessions(rows, TIMEZONE), "fct_sessions")
    assert_same(records(warehouse, "SELECT * FROM web_analytics.web_top_pages_daily ORDER BY log_date, rank"),
                web_metrics.top_pages(rows, TIMEZONE), "web_top_pages_daily")


def test_re_running_the_range_leaves_every_web_table_identical(platform):
    before, after = platform["tables_after_first"], web_tables(platform["warehouse"])
    for name in WEB_TABLES:
        columns = list(before[name].columns)
        pd.testing.assert_frame_equal(by_key(after[name], columns), by_key(before[name], columns), obj=name)


def test_the_salt_and_full_client_addresses_appear_nowhere(platform):
    instance, root = platform["instance"], platform["root"]
    assert MARKER not in str(platform["spark_conf"])
    files = [p for p in root.rglob("*") if p.is_file() and "delivered" not in p.parts]
    leaks = find_secret(MARKER, texts={"captured output": platform["captured"]}, instance=instance, files=files)
    assert leaks == []
    # Full addresses stay in raw/ and rejected/: not in clean/, the warehouse or the event log.
    with duckdb.connect(str(platform["warehouse"]), read_only=True) as con:
        prefixes = {p for (p,) in con.execute("SELECT DISTINCT client_prefix FROM web_raw.access_logs").fetchall()}
    addresses = {"203.0.113.7", "2001:db8:85a3::8a2e:370:7334", "198.51.100.23", "66.249.66.1"}
    assert {"203.0.113.0/24", "2001:db8:85a3::/48", "198.51.100.0/24"} <= prefixes
    beyond_raw = [p for p in files if not {"raw", "rejected"} & set(p.parts)]
    for address in addresses:
        assert find_secret(address, instance=instance, files=beyond_raw) == [], address
