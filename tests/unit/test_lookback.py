"""Partitions that look back (stock_platform/platform/lookback.py): which partitions are out of
date, the check that reports them, when Dagster's automation runs that check, and which later
partitions a run rewrites.

Materializations are reported to a real (temporary) Dagster instance as runless events; the check
runs in a real job against it."""

import datetime as dt

import dagster as dg
import pytest

from stock_platform.platform.calendars import weekday_partitions
from stock_platform.platform.lookback import (
    later_partitions,
    lookback_mapping,
    lookback_staleness_check,
    stale_partitions,
)

LOOKBACK = dt.timedelta(days=364)
PARTITIONS = weekday_partitions("2024-01-01", "Asia/Seoul")
UPSTREAM = dg.AssetKey(["raw", "prices"])
MART = dg.AssetKey(["marts", "metrics"])
OTHER = dg.AssetKey(["marts", "summary"])
CHECK = "built_after_its_lookback"


def keys(first: str, last: str) -> list[str]:
    return [k for k in PARTITIONS.get_partition_keys() if first <= k <= last]


# stale_partitions: pure --------------------------------------------------------------------------
def test_a_partition_built_after_every_input_is_current():
    assert stale_partitions({"2024-03-04": 10}, {"2024-03-01": 5, "2024-03-04": 9}, LOOKBACK) == {}


def test_a_change_inside_the_lookback_makes_a_partition_stale():
    built = {"2024-03-04": 10, "2024-03-05": 11}
    inputs = {"2024-03-04": 12, "2024-03-05": 9}  # 03-04 changed after both were built
    assert stale_partitions(built, inputs, LOOKBACK) == {"2024-03-04": "2024-03-04", "2024-03-05": "2024-03-04"}


def test_the_lookback_bounds_are_inclusive_and_exact():
    built = {"2025-03-04": 10}
    assert stale_partitions(built, {"2024-03-05": 20}, LOOKBACK) == {"2025-03-04": "2024-03-05"}  # 364 days
    assert stale_partitions(built, {"2024-03-04": 20}, LOOKBACK) == {}  # 365 days: outside
    assert stale_partitions(built, {"2025-03-05": 20}, LOOKBACK) == {}  # later day: not an input


def test_the_newest_missed_input_day_is_named():
    inputs = {"2024-03-04": 20, "2024-03-06": 21, "2024-03-07": 5}
    assert stale_partitions({"2024-03-07": 10}, inputs, LOOKBACK) == {"2024-03-07": "2024-03-06"}


# the check, against an instance -----------------------------------------------------------------
def definitions() -> dg.Definitions:
    check = lookback_staleness_check(CHECK, [MART, OTHER], UPSTREAM, LOOKBACK)
    specs = [dg.AssetSpec(UPSTREAM, partitions_def=PARTITIONS)] + [
        dg.AssetSpec(key, deps=[dg.AssetDep(UPSTREAM, partition_mapping=lookback_mapping(260))],
                     partitions_def=PARTITIONS)
        for key in (MART, OTHER)
    ]
    job = dg.define_asset_job("lookback_checks", selection=dg.AssetSelection.all_asset_checks())
    return dg.Definitions(assets=specs, asset_checks=[check], jobs=[job])


def report(instance, key, partitions):
    for partition in partitions:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))


def run_checks(defs, instance) -> dict[dg.AssetKey, dg.AssetCheckEvaluation]:
    result = defs.resolve_job_def("lookback_checks").execute_in_process(instance=instance)
    assert result.success
    return {e.asset_key: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_the_check_fails_after_an_earlier_day_changes_and_passes_once_rebuilt(instance):
    defs = definitions()
    days = keys("2024-01-01", "2024-03-29")
    report(instance, UPSTREAM, days)
    report(instance, MART, days)
    report(instance, OTHER, days)
    assert all(e.passed for e in run_checks(defs, instance).values())

    report(instance, UPSTREAM, ["2024-02-01"])  # a corrected day
    results = run_checks(defs, instance)
    stale = keys("2024-02-01", "2024-03-29")
    for key in (MART, OTHER):
        assert not results[key].passed
        assert results[key].metadata["stale_partitions"].value == len(stale)
        assert "- 2024-02-01 (input 2024-02-01 changed after it)" in results[key].metadata["first_stale"].value

    report(instance, MART, stale)  # what a run over 2024-02-01 records
    results = run_checks(defs, instance)
    assert results[MART].passed and not results[OTHER].passed


def test_the_check_runs_by_itself_when_the_upstream_changes(instance):
    defs = definitions()
    days = keys("2024-01-01", "2024-01-31")
    report(instance, UPSTREAM, days)
    report(instance, MART, days)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    # A run of the upstream and the assets runs the checks itself: nothing is requested after it.
    report(instance, UPSTREAM, ["2024-01-10"])
    report(instance, MART, ["2024-01-10"])
    run_checks(defs, instance)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.total_requested == 0
    # An earlier upstream day changes on its own: the checks are requested, no asset, once.
    report(instance, UPSTREAM, ["2024-01-15"])
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    requested = {result.key for result in tick.results if result.true_subset.size}
    assert requested == {dg.AssetCheckKey(MART, CHECK), dg.AssetCheckKey(OTHER, CHECK)}
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.total_requested == 0


# later_partitions -------------------------------------------------------------------------------
def test_later_partitions_are_the_materialized_ones_whose_lookback_reaches_the_day(instance):
    report(instance, MART, [*keys("2024-01-01", "2024-01-31"), "2025-01-10"])
    later = later_partitions(instance, MART, PARTITIONS, dt.date(2024, 1, 12), LOOKBACK)
    # Materialized, after 01-12 and no later than 01-12 + 364 days (2025-01-10).
    assert later == [*keys("2024-01-15", "2024-01-31"), "2025-01-10"]
    assert later_partitions(instance, MART, PARTITIONS, dt.date(2024, 1, 31), LOOKBACK) == ["2025-01-10"]
    assert later_partitions(instance, OTHER, PARTITIONS, dt.date(2024, 1, 12), LOOKBACK) == []
