"""The whole graph materialized through Dagster for short ranges in a temporary data dir."""

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fixtures.platform import (
    MARTS,
    assert_marts_equal_a_full_refresh,
    checksums,
    domain_job,
    local_definitions,
    settings_of,
    table,
)

from stock_platform.defs.stock_prices.freshness import CHECK as FRESHNESS_CHECK
from stock_platform.defs.stock_prices.schema import CLEAN, RAW, REJECTED
from stock_platform.platform.lake import Lake

# Two consecutive range runs, then a daily run; 2024-04-10 (22nd National Assembly election) is a
# KRX holiday.
FIRST_RUN = ("2024-04-01", "2024-04-12")
SECOND_RUN = ("2024-04-15", "2024-04-18")
DAILY_RUN = ("2024-04-19", "2024-04-19")
HOLIDAY = dt.date(2024, 4, 10)


def materialize_range(defs: dg.Definitions, instance, first: str, last: str):
    job = domain_job(defs)
    return job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def platform(tmp_path_factory, spark):
    data_dir = tmp_path_factory.mktemp("platform")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STOCK_PLATFORM_DATA_DIR", str(data_dir))  # for dbt's profile
        settings = settings_of(data_dir)
        defs = local_definitions(settings)
        with dg.instance_for_test() as instance:
            results = [materialize_range(defs, instance, *run) for run in (FIRST_RUN, SECOND_RUN, DAILY_RUN)]
            yield {"settings": settings, "defs": defs, "instance": instance, "results": results}


def test_runs_succeed(platform):
    for result in platform["results"]:
        failures = [
            event.event_specific_data.error.to_string()
            for event in result.all_events
            if event.event_type_value == "STEP_FAILURE"
        ]
        assert result.success, failures


def test_every_asset_is_materialized_for_every_partition(platform):
    instance = platform["instance"]
    graph = platform["defs"].resolve_asset_graph()
    keys = [key for key in graph.materializable_asset_keys if graph.get(key).group_name == "stock_prices"]
    assert len(keys) == 8
    expected = {day.strftime("%Y-%m-%d") for day in pd.bdate_range("2024-04-01", "2024-04-19")}
    for key in keys:
        events = instance.fetch_materializations(key, limit=100).records
        assert {event.partition_key for event in events} == expected, key


def test_holiday_is_market_closed(platform):
    settings = platform["settings"]
    lake = Lake(settings.lake_root)
    for dataset in (RAW, CLEAN, REJECTED):
        manifest = lake.manifest(dataset, HOLIDAY)
        assert (manifest.status, manifest.rows, manifest.files) == ("market_closed", 0, [])
    raw_event = platform["instance"].fetch_materializations(
        dg.AssetKey("raw_stock_prices"), limit=100
    ).records
    closed = next(r for r in raw_event if r.partition_key == HOLIDAY.isoformat())
    metadata = closed.asset_materialization.metadata  # the partition's own figures
    assert metadata["market_closed"].value is True
    assert metadata["status"].value.startswith("market closed (")
    assert metadata["dagster/row_count"].value == 0
    prices = table(settings.warehouse_path, "stock_raw.daily_prices")
    assert HOLIDAY not in set(prices["trade_date"].dt.date)


def test_lake_layout_and_warehouse_parity(platform):
    settings = platform["settings"]
    lake = Lake(settings.lake_root)
    prices = table(settings.warehouse_path, "stock_raw.daily_prices")
    per_day = prices.groupby(prices["trade_date"].dt.date).size()
    sessions = [d.date() for d in pd.bdate_range("2024-04-01", "2024-04-19") if d.date() != HOLIDAY]
    assert sorted(per_day.index) == sessions
    for day in sessions:
        raw = lake.manifest(RAW, day)
        assert raw.rows == raw.details["total_count"] == per_day[day]
        assert all(path.endswith(".json.gz") for path in lake.files(RAW, day))
        clean = lake.manifest(CLEAN, day)
        assert clean.rows == per_day[day] and clean.files[0].endswith(".zstd.parquet")
        assert lake.manifest(REJECTED, day).rows == 0
    assert per_day.min() >= 2500 and per_day.max() <= 2900
    # Every column chunk zstd, none dictionary-encoded (write_partitioned says why).
    [first_file] = lake.files(CLEAN, sessions[0])
    row_group = pq.ParquetFile(first_file).metadata.row_group(0)
    chunks = [row_group.column(i) for i in range(row_group.num_columns)]
    assert {chunk.compression for chunk in chunks} == {"ZSTD"}
    assert not any(chunk.has_dictionary_page for chunk in chunks)


def test_checks_pass_and_are_recorded(platform):
    for result in platform["results"]:
        evaluations = [
            event.event_specific_data
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        names = {e.check_name for e in evaluations}
        assert {"market_cap_equals_close_times_shares", "row_count_matches_clean",
                "no_rejected_rows"} <= names
        assert any(name.startswith("unique_combination_of_columns_fct") for name in names)
        # The freshness check judges the wall clock (the latest KRX session due today), not
        # these 2024 days: it runs here because the job takes every check of the group.
        assert [e.check_name for e in evaluations if not e.passed and e.check_name != FRESHNESS_CHECK] == []


def test_materializations_carry_metadata(platform):
    instance = platform["instance"]

    def latest(key):
        return instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization.metadata

    assert latest(["raw_stock_prices"])["dagster/row_count"].value > 0
    clean = latest(["clean_stock_prices"])
    assert clean["rejected_rows"].value == 0
    assert clean["lake_path"].value.endswith("clean/stock_prices")
    assert [c.name for c in clean["dagster/column_schema"].schema.columns][:3] == [
        "trade_date", "ticker", "isin"]
    warehouse = latest(["stock_raw", "daily_prices"])
    assert warehouse["dagster/table_name"].value == "stock_raw.daily_prices"
    for mart in MARTS:
        metadata = latest(["stock_analytics", mart])  # from the daily run
        assert metadata["dagster/row_count"].value > 0, mart
        assert "dagster/column_schema" in metadata, mart
        assert "dagster/column_lineage" in metadata, mart
        # A range run leaves the table's figures to the daily run (not copied into each partition).
        [in_range] = [r.asset_materialization.metadata for r in instance.fetch_materializations(
            dg.AssetKey(["stock_analytics", mart]), limit=100).records
            if r.partition_key == SECOND_RUN[1]]
        assert "dagster/row_count" not in in_range, mart
        assert "dagster/column_lineage" not in in_range, mart
    lineage = latest(["stock_analytics", "fct_daily_stock_metrics"])["dagster/column_lineage"]
    deps = lineage.value.deps_by_column["ma_20"]
    assert [(d.asset_key.to_user_string(), d.column_name) for d in deps] == [
        ("stock_analytics/stg_daily_prices", "close")]


def test_market_summary_carries_a_preview_of_the_last_day(platform):
    instance = platform["instance"]
    event = instance.get_latest_materialization_event(
        dg.AssetKey(["stock_analytics", "market_daily_summary"]))
    preview = event.asset_materialization.metadata["preview"].value
    with duckdb.connect(str(platform["settings"].warehouse_path), read_only=True) as con:
        listings = dict(con.execute(
            "SELECT market, listings FROM stock_analytics.market_daily_summary "
            "WHERE trade_date = ?", [DAILY_RUN[1]]).fetchall())
    assert preview.startswith(f"**Market summary {DAILY_RUN[1]}**"), preview
    rows = [line for line in preview.splitlines() if line.startswith("| KO")]
    assert [row.split(" | ")[:2] for row in rows] == [
        [f"| {market}", f"{listings[market]:,}"] for market in sorted(listings)]


def test_rerunning_a_range_gives_identical_tables(platform):
    path = platform["settings"].warehouse_path
    before = checksums(path)
    result = materialize_range(platform["defs"], platform["instance"], "2024-04-08", "2024-04-16")
    assert result.success
    assert checksums(path) == before


def test_incremental_marts_equal_a_full_refresh(platform, tmp_path):
    assert_marts_equal_a_full_refresh(platform["settings"].warehouse_path, tmp_path)
