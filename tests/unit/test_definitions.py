"""A snapshot of the whole asset graph: keys, lineage, groups, kinds, partitioning and pools.

A change to any of these is a change users see in the UI; it should show up here as a diff.
"""

import json
import re
import subprocess

import dagster as dg
import dagster_dbt.core.resource
from packaging.version import Version

from stock_platform.definitions import defs
from stock_platform.platform.calendars import DAILY_PARTITIONS
from stock_platform.resources import DBT_PROJECT_DIR, ProjectDbtCliResource, dbt_executable

GRAPH = {
    # key: (parents, group, kinds, pools)
    "raw_stock_prices": ([], "ingestion", {"python", "json"}, {"stock_api"}),
    "clean_stock_prices": (["raw_stock_prices"], "cleaning", {"spark", "parquet"}, set()),
    "stock_raw/daily_prices": (["clean_stock_prices"], "warehouse", {"duckdb", "bigquery"}, {"warehouse"}),
    "stock_analytics/stg_daily_prices": (["stock_raw/daily_prices"], "analytics", {"dbt", "duckdb"}, {"warehouse"}),
    "stock_analytics/fct_daily_stock_metrics": (["stock_analytics/stg_daily_prices"], "analytics", {"dbt", "duckdb"}, {"warehouse"}),
    "stock_analytics/market_daily_summary": (["stock_analytics/stg_daily_prices"], "analytics", {"dbt", "duckdb"}, {"warehouse"}),
    "stock_analytics/top_movers_daily": (["stock_analytics/stg_daily_prices"], "analytics", {"dbt", "duckdb"}, {"warehouse"}),
}


def test_the_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    assert [s.name for s in defs.schedules] == ["daily_schedule"]
    assert [s.name for s in defs.sensors] == ["notify_run_failure"]


def test_asset_graph_snapshot():
    graph = defs.resolve_asset_graph()
    actual = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        actual[key.to_user_string()] = (
            sorted(parent.to_user_string() for parent in node.parent_keys),
            node.group_name,
            set(node.kinds),
            set(node.pools),
        )
    assert actual == GRAPH


def test_every_asset_is_daily_partitioned_and_backfills_in_one_run():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def == DAILY_PARTITIONS, key
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), key


def test_every_step_declares_its_pod_resources_as_op_tags():
    # Op tags, not job tags: they apply however the run was launched (UI, schedule, backfill).
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        tags = graph.assets_def_for_key(key).op.tags
        resources = json.loads(tags["dagster-k8s/config"])["container_config"]["resources"]
        assert set(resources) == {"requests", "limits"}, key
        assert {"cpu", "memory"} <= set(resources["requests"]), key


def test_the_dbt_resource_knows_the_dbt_version_without_starting_dbt(monkeypatch):
    printed = subprocess.run([dbt_executable(), "--version"], capture_output=True, text=True).stdout
    installed = Version(re.search(r"installed:\s*(\d+\.\d+\.\d+)", printed).group(1))
    probes = []
    monkeypatch.setattr(dagster_dbt.core.resource, "check_output",
                        lambda command: probes.append(command) or printed.encode())
    assert isinstance(defs.resources["dbt"], ProjectDbtCliResource)
    assert defs.resources["dbt"]._cli_version == installed
    assert probes == []
    # Another dbt (here: one found on PATH by name) is still asked.
    assert ProjectDbtCliResource(project_dir=DBT_PROJECT_DIR, dbt_executable="dbt")._cli_version == installed
    assert probes == [["dbt", "--version"]]
