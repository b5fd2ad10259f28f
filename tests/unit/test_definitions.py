"""The code location: what it defines, in both environments, and a snapshot of the asset graph.

The snapshot (snapshots/asset_graph.json) holds what users see of every asset in the UI: its
dependencies, group, kinds, partitions, backfill policy, pools, checks and freshness policy. A
change to any of them shows up as a failing diff. When the change is intended, refresh the file
and review it in the commit:

    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_definitions.py
"""

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from dagster_k8s import k8s_job_executor
from fixtures.platform import domain_job

from stock_platform.cli import definitions
from stock_platform.defs.stock_prices.freshness import CHECK as FRESHNESS_CHECK
from stock_platform.defs.web_traffic.marts import MARTS_FRESHNESS as WEB_MARTS_FRESHNESS
from stock_platform.platform.resources.gcp import BigQueryWarehouseResource, GcsLakeResource

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
STOCK_ASSET_KEYS = {
    "raw_stock_prices",
    "clean_stock_prices",
    "stock_raw/daily_prices",
    "stock_analytics/stg_daily_prices",
    "stock_analytics/fct_daily_stock_metrics",
    "stock_analytics/market_daily_summary",
    "stock_analytics/top_movers_daily",
    "stock_analytics/fct_stock_features",
}
WEB_MARTS = {f"web_analytics/{name}" for name in (
    "dim_date", "dim_time", "dim_page", "dim_user_agent", "dim_referrer",
    "fct_requests", "fct_sessions", "web_daily_traffic", "web_top_pages_daily",
)}
WEB_ASSET_KEYS = {
    "raw_web_access_logs",
    "clean_web_access_logs",
    "web_raw/access_logs",
    "web_analytics/stg_access_logs",
    # The days each dimension member occurs on: what keeps a dimension equal to a full refresh.
    "web_analytics/int_web_page_days",
    "web_analytics/int_web_user_agent_days",
    "web_analytics/int_web_referrer_days",
    *WEB_MARTS,
}
SERVING_ASSET_KEYS = {"serving/stock_daily_metrics", "serving/market_daily_summary", "serving/web_daily_traffic"}
OPERATIONS_ASSET_KEYS = {"platform_health"}
DOMAINS = {"stock_prices": STOCK_ASSET_KEYS, "web_traffic": WEB_ASSET_KEYS, "serving": SERVING_ASSET_KEYS,
           "operations": OPERATIONS_ASSET_KEYS}
MARTS = {f"stock_analytics/{name}" for name in
         ("fct_daily_stock_metrics", "market_daily_summary", "top_movers_daily", "fct_stock_features")}
GCP = {"STOCK_PLATFORM_ENV": "gcp", "GCP_PROJECT": "test-project", "BQ_LOCATION": "asia-northeast3",
       "GCS_LAKE_URI": "gs://stock-lake/test", "SPARK_RUNNER": "dataproc",
       "DATAPROC_REGION": "asia-northeast3", "DATAPROC_CODE_URI": "gs://stock-code/test"}


def partitions(partitions_def) -> dict | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return {"cron_schedule": partitions_def.cron_schedule, "timezone": partitions_def.timezone,
                "start": partitions_def.start.isoformat(), "fmt": partitions_def.fmt,
                "end": partitions_def.end.isoformat() if partitions_def.end else None}
    return {"type": type(partitions_def).__name__}


def freshness(policy) -> dict | None:
    if policy is None:
        return None
    return {"type": type(policy).__name__, "deadline_cron": policy.deadline_cron,
            "lower_bound_delta_s": policy.lower_bound_delta.total_seconds(),
            "timezone": policy.timezone}


def graph_snapshot(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    checks: dict[dg.AssetKey, list[str]] = {}
    for check in graph.asset_check_keys:
        checks.setdefault(check.asset_key, []).append(check.name)
    snapshot = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        snapshot[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partition_mappings": {
                parent.to_user_string(): str(graph.get_partition_mapping(key, parent))
                for parent in sorted(node.parent_keys)
                if isinstance(graph.get_partition_mapping(key, parent), dg.TimeWindowPartitionMapping)
                and graph.get_partition_mapping(key, parent).start_offset != 0
            },
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "partitions": partitions(node.partitions_def),
            "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
            "pools": sorted(node.pools),
            "checks": sorted(checks.get(key, [])),
            "freshness": freshness(node.freshness_policy),
        }
    return snapshot


@pytest.fixture(scope="module")
def local_defs() -> dg.Definitions:
    return definitions()


@pytest.fixture
def gcp_defs(setenv) -> dg.Definitions:
    from stock_platform.definitions import defs

    setenv(**GCP)
    return defs()


def test_the_asset_keys_are_unchanged(local_defs):
    keys = {key.to_user_string() for key in local_defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == STOCK_ASSET_KEYS | WEB_ASSET_KEYS | SERVING_ASSET_KEYS | OPERATIONS_ASSET_KEYS


def test_each_domain_is_one_asset_group(local_defs):
    graph = local_defs.resolve_asset_graph()
    assert {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()} == {
        key: domain for domain, keys in DOMAINS.items() for key in keys}


def test_the_asset_graph_matches_the_snapshot(local_defs):
    actual = graph_snapshot(local_defs)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert actual == expected, (
        "the asset graph changed; if that is intended, refresh the snapshot with "
        "UPDATE_SNAPSHOTS=1 and review the diff of tests/unit/snapshots/asset_graph.json")


def test_the_local_definitions_load_with_their_resources_schedule_and_sensor(local_defs):
    dg.Definitions.validate_loadable(local_defs)
    assert set(local_defs.resources) == {"stock_source", "web_log_source", "lake", "spark", "warehouse", "dbt",
                                           "serving_db"}
    assert local_defs.executor is dg.in_process_executor
    schedule = local_defs.resolve_schedule_def("daily_schedule")
    sensor = local_defs.resolve_sensor_def("notify_run_failure")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # Declarative automation (the marts' lookback checks) is on without a click.
    automation = local_defs.resolve_sensor_def("stock_prices_automation")
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_gcp_definitions_load_with_the_same_graph_and_gcp_resources(gcp_defs, local_defs):
    dg.Definitions.validate_loadable(gcp_defs)
    assert set(gcp_defs.resources) == set(local_defs.resources)
    assert isinstance(gcp_defs.resources["lake"], GcsLakeResource)
    assert gcp_defs.resources["lake"].root == "gs://stock-lake/test"
    assert isinstance(gcp_defs.resources["warehouse"], BigQueryWarehouseResource)
    assert gcp_defs.resources["dbt"].target == "prod"
    assert gcp_defs.executor is k8s_job_executor
    assert graph_snapshot(gcp_defs) == graph_snapshot(local_defs)


def test_freshness_is_watched_on_the_marts_only(local_defs):
    # The web marts (calendar days): a cron freshness policy. The stock marts: a check on the
    # trading calendar instead (a cron policy calls them stale on every KRX holiday).
    graph = local_defs.resolve_asset_graph()
    policies = {key.to_user_string(): graph.get(key).freshness_policy for key in graph.get_all_asset_keys()}
    assert {key for key, policy in policies.items() if policy is not None} == WEB_MARTS
    assert all(policies[key] == WEB_MARTS_FRESHNESS for key in WEB_MARTS)
    checked = {key.asset_key.to_user_string() for key in graph.asset_check_keys if key.name == FRESHNESS_CHECK}
    assert checked == MARTS


def test_every_step_declares_its_pod_resources_as_op_tags(local_defs):
    # Op tags, not job tags: they apply however the run was launched (UI, schedule, backfill).
    # Every op of the graph: the assets' and the checks' that run as steps of their own.
    # serving's tables follow two calendars: no one job holds them all.
    ops = [op for domain in ("stock_prices", "web_traffic") for op in domain_job(local_defs, domain).graph.node_defs]
    ops += [local_defs.resolve_assets_def(dg.AssetKey.from_user_string(key)).op for key in SERVING_ASSET_KEYS]
    assert any(op.name.startswith("built_after_its_lookback") for op in ops)
    for op in ops:
        resources = json.loads(op.tags["dagster-k8s/config"])["container_config"]["resources"]
        assert set(resources) == {"requests", "limits"}, op.name
        assert {"cpu", "memory"} <= set(resources["requests"]), op.name
        assert resources["limits"]["memory"] == resources["requests"]["memory"], op.name


def test_each_mart_partition_depends_on_the_partitions_of_its_lookback():
    """The mapping's 260 weekday partitions before P are exactly the weekdays in [P - 364 days, P)
    (the days the dbt marts read, LOOKBACK), whatever weekday P is."""
    from stock_platform.defs.stock_prices.marts import LOOKBACK, LOOKBACK_PARTITIONS
    from stock_platform.defs.stock_prices.partitions import STOCK_PARTITIONS

    keys = STOCK_PARTITIONS.get_partition_keys()
    for position in range(len(keys) - 10, len(keys)):  # two weeks: every weekday
        partition = keys[position]
        first = (STOCK_PARTITIONS.time_window_for_partition_key(partition).start - LOOKBACK).strftime("%Y-%m-%d")
        in_lookback = [k for k in keys[:position] if k >= first]
        assert len(in_lookback) == LOOKBACK_PARTITIONS, partition
