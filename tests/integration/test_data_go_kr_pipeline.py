"""The whole graph with STOCK_SOURCE=data_go_kr against the fake API server, and the key's secrecy.

One module-scoped set of runs (Spark and dbt are slow): a full run over 2024-04-08..11 (04-10 is
a KRX holiday), then ingestion-only runs for quota exhaustion and resumption, an unpublished day
and a missing key. The last test searches everything those runs left behind for the key.
"""

import contextlib
import datetime as dt
import gzip
import io
import logging

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster import serialize_value
from fixtures.data_go_kr import (
    data_go_kr_definitions,
    expected_warehouse,
    failure_messages,
    readable,
    run,
    use_fake_api,
)
from fixtures.platform import settings_of

from stock_platform.defs.stock_prices.schema import RAW
from stock_platform.defs.stock_prices.sources.synthetic import SyntheticMarket
from stock_platform.platform.lake import Lake
from stock_platform.testing.fake_data_go_kr import FakeDataGoKr

MARKER = "LeakCanary"  # survives percent-encoding: finds the key in any form
KEY = MARKER + "Pipe+Q9/zW4=="
FULL_RUN = ("2024-04-08", "2024-04-11")
SESSIONS = [dt.date(2024, 4, d) for d in (8, 9, 11)]
QUOTA_RUN = ("2024-04-15", "2024-04-16")
UNPUBLISHED = "2024-04-17"  # a trading day the server has no rows for
SERVED = [*SESSIONS, dt.date(2024, 4, 15), dt.date(2024, 4, 16)]


@pytest.fixture(scope="module")
def platform(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("data_go_kr_platform")
    frames = SyntheticMarket(7).frames(SERVED)
    log_text, output = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(log_text)
    chatty = [logging.getLogger(name) for name in ("httpx", "httpcore")]  # they log each request
    levels = [logger.level for logger in chatty]
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(
            FakeDataGoKr(frames, KEY, latency=(0.01, 0.05), fault_rate=0.15, seed=11, echo_key=True)
        )
        env = stack.enter_context(pytest.MonkeyPatch.context())
        use_fake_api(env, root / "data", api.url, KEY, DATA_GO_KR_MAX_RPS="50")
        settings = settings_of(root / "data")
        defs = data_go_kr_definitions(settings)
        (root / "instance").mkdir()  # so that its sqlite files can be searched afterwards
        instance = stack.enter_context(dg.instance_for_test(temp_dir=str(root / "instance")))
        logging.getLogger().addHandler(handler)
        stack.callback(logging.getLogger().removeHandler, handler)
        for logger in chatty:
            logger.setLevel(logging.DEBUG)
        stack.enter_context(contextlib.redirect_stdout(output))
        stack.enter_context(contextlib.redirect_stderr(output))

        results = {"full": run(defs, instance, *FULL_RUN)}
        served_full = api.count()
        api.daily_quota = api.count() + 1  # one more request, then the key's quota is used up
        results["quota"] = run(defs, instance, *QUOTA_RUN, raw_only=True)
        quota_lake = {day: Lake(settings.lake_root).manifest(RAW, day) for day in SERVED[3:]}
        api.reset_quota()
        api.daily_quota = None  # the next day
        results["resumed"] = run(defs, instance, *QUOTA_RUN, raw_only=True)
        results["unpublished"] = run(defs, instance, UNPUBLISHED, UNPUBLISHED, raw_only=True)
        env.delenv("DATA_GO_KR_SERVICE_KEY")
        # dg.EnvVar is resolved when the run starts: the run is refused, naming the variable.
        with pytest.raises(dg.DagsterInvalidConfigError) as no_key:
            run(defs, instance, *QUOTA_RUN, raw_only=True)
        for logger, level in zip(chatty, levels, strict=True):
            logger.setLevel(level)
        yield {
            "settings": settings, "instance": instance, "api": api, "frames": frames, "root": root,
            "results": results, "served_full": served_full, "quota_lake": quota_lake,
            "captured": log_text.getvalue() + output.getvalue(), "no_key": str(no_key.value),
        }


def test_full_run_succeeds_through_dbt(platform):
    result = platform["results"]["full"]
    assert result.success, failure_messages(result)
    assert platform["served_full"] > 9  # 3 sessions x 3 pages, plus injected faults retried


def test_warehouse_equals_exactly_what_the_server_served(platform):
    expected = expected_warehouse(platform["frames"], SESSIONS)
    with duckdb.connect(str(platform["settings"].warehouse_path), read_only=True) as con:
        actual = con.execute(
            f"SELECT {', '.join(expected.columns)} FROM stock_raw.daily_prices "
            "ORDER BY trade_date, ticker"
        ).df()
        marts = con.execute("SELECT count(*) FROM stock_analytics.fct_daily_stock_metrics").fetchone()
    actual["trade_date"] = pd.to_datetime(actual["trade_date"]).dt.date
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    assert marts[0] == len(expected)


def test_raw_pages_are_stored_as_served_minus_the_key(platform):
    lake = Lake(platform["settings"].lake_root)
    for day in SESSIONS:
        manifest = lake.manifest(RAW, day)
        assert manifest.rows == manifest.details["total_count"] == len(platform["frames"][day])
        assert [p["page_no"] for p in manifest.details["pages"]] == [1, 2, 3]
        first = gzip.decompress(lake.read_bytes(f"{lake.partition_dir(RAW, day)}/{manifest.files[0]}"))
        assert b'"serviceKey":"<redacted>"' in first  # the echoed key, scrubbed


def test_quota_exhaustion_writes_nothing_and_the_next_run_resumes(platform):
    results = platform["results"]
    assert not results["quota"].success
    assert "daily quota exhausted, resume tomorrow" in failure_messages(results["quota"])
    assert platform["quota_lake"] == {day: None for day in SERVED[3:]}
    assert results["resumed"].success, failure_messages(results["resumed"])
    lake = Lake(platform["settings"].lake_root)
    for day in SERVED[3:]:
        assert lake.manifest(RAW, day).rows == len(platform["frames"][day])


def test_unpublished_session_fails_the_partition(platform):
    result = platform["results"]["unpublished"]
    assert not result.success
    assert "not published" in failure_messages(result) and UNPUBLISHED in failure_messages(result)
    assert Lake(platform["settings"].lake_root).manifest(RAW, dt.date(2024, 4, 17)) is None


def test_missing_key_fails_the_run_naming_the_variable(platform):
    assert 'environment variable "DATA_GO_KR_SERVICE_KEY" which is not set' in platform["no_key"]


def test_readable_finds_a_planted_key(tmp_path):
    (tmp_path / "page.json.gz").write_bytes(gzip.compress(KEY.encode()))
    pd.DataFrame({"x": [KEY]}).to_parquet(tmp_path / "part.zstd.parquet", compression="zstd")
    assert all(MARKER.encode() in readable(p) for p in tmp_path.iterdir())


def test_key_appears_nowhere(platform):
    instance, api = platform["instance"], platform["api"]
    assert api.count("ok") > 0  # the server did receive the key
    assert "HTTP Request: GET" in platform["captured"]  # httpx's request log was captured
    assert MARKER not in platform["captured"]
    for result in platform["results"].values():
        for entry in instance.all_logs(result.run_id):
            assert MARKER not in serialize_value(entry)
        assert MARKER not in serialize_value(instance.get_run_by_id(result.run_id))
    for key in instance.get_asset_keys():
        for record in instance.fetch_materializations(key, limit=1000).records:
            assert MARKER not in str(record.asset_materialization.metadata)
    files = [p for p in platform["root"].rglob("*") if p.is_file()]
    assert any(p.name.endswith(".json.gz") for p in files) and any(p.suffix == ".db" for p in files)
    leaks = [str(p) for p in files if MARKER.encode() in readable(p)]
    assert leaks == []
