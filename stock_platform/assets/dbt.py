"""The dbt project as assets: stock_analytics/<model>, built incrementally per partition window."""


import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource, DbtProject, dbt_assets

from stock_platform.assets.common import PARTITIONED
from stock_platform.k8s import k8s_op_tags

dbt_project = DbtProject(project_dir=Path(__file__).resolve().parents[2] / "dbt_project")
dbt_project.prepare_if_dev()


class StockDbtTranslator(DagsterDbtTranslator):
    """Models are stock_analytics/<model>; the source stock_raw.daily_prices is the warehouse
    asset, so lineage runs unbroken from the API to the marts."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            return spec.replace_attributes(key=dg.AssetKey([props["source_name"], props["name"]]))
        return spec.replace_attributes(
            key=dg.AssetKey(["stock_analytics", props["name"]]), group_name="analytics"
        )


def dbt_vars(window: dg.TimeWindow) -> dict[str, str]:
    """The dbt vars for a partition window: inclusive first and last calendar day.

    The window end is exclusive (a Friday's window ends Monday 00:00), so the last day is the day
    before it.
    """
    last = (window.end - dt.timedelta(days=1)).date()
    return {"min_date": window.start.date().isoformat(), "max_date": last.isoformat()}


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=StockDbtTranslator(),
    name="stock_analytics_dbt",
    pool="warehouse",
    op_tags=k8s_op_tags("stock_analytics_dbt"),
    **PARTITIONED,
)
def stock_analytics_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    window = dbt_vars(context.partition_time_window)
    invocation = dbt.cli(["build", "--vars", json.dumps(window)], context=context)
    events = invocation.stream()
    if len(context.partition_keys) == 1:
        # Table row counts, column types and column lineage on daily runs. A backfill would query
        # them for every partition's event and copy them in: 13 s per year of range, for figures
        # of the whole table (not the partition) that the next daily run records anyway.
        events = events.fetch_row_counts().fetch_column_metadata()
    # The summary's output (and its checks, in order) waits until dbt has released the warehouse:
    # the preview reads it, and a DuckDB file has a single writer.
    held = []
    for event in events:
        if _is_summary_event(context, event):
            held.append(event)
        else:
            yield event
    for event in held:
        if isinstance(event, dg.Output):
            preview = market_summary_preview(invocation, window["max_date"])
            event = event.with_metadata({**event.metadata, "preview": preview})
        yield event


MARKET_SUMMARY = dg.AssetKey(["stock_analytics", "market_daily_summary"])
# The latest day with rows up to the window's last day (which may be a holiday).
PREVIEW_SQL = """
select * from {relation}
where trade_date = (select max(trade_date) from {relation} where trade_date <= '{last_day}')
order by market
"""
PREVIEW_COLUMNS = ["market", "listings", "advancers", "decliners", "unchanged", "total_volume",
                   "total_traded_value", "total_market_cap"]


def _is_summary_event(context: dg.AssetExecutionContext, event) -> bool:
    if isinstance(event, dg.Output):
        return context.asset_key_for_output(event.output_name) == MARKET_SUMMARY
    return isinstance(event, dg.AssetCheckResult) and event.asset_key == MARKET_SUMMARY


def market_summary_preview(invocation: DbtCliInvocation, last_day: str) -> dg.MetadataValue:
    """The latest day's market_daily_summary as a Markdown table, queried through the build's own
    dbt adapter (whichever warehouse the target uses; no second dbt process)."""
    node = invocation.manifest["nodes"]["model.stock_platform.market_daily_summary"]
    sql = PREVIEW_SQL.format(relation=node["relation_name"], last_day=last_day)
    with invocation.adapter.connection_named("market_summary_preview"):
        _, table = invocation.adapter.execute(sql, fetch=True)
    rows = [dict(zip(table.column_names, row)) for row in table.rows]
    return preview_markdown(rows, last_day)


def preview_markdown(rows: list[dict[str, Any]], last_day: str) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md(f"No market summary on or before {last_day}.")
    lines = [
        f"**Market summary {rows[0]['trade_date']}**",
        "",
        "| " + " | ".join(PREVIEW_COLUMNS) + " | cap-weighted return |",
        "|---" * (len(PREVIEW_COLUMNS) + 1) + "|",
    ]
    for row in rows:
        cells = [row["market"]] + [f"{row[c]:,}" for c in PREVIEW_COLUMNS[1:]]
        ret = row["cap_weighted_return"]
        cells.append("-" if ret is None else f"{ret:+.2%}")
        lines.append("| " + " | ".join(cells) + " |")
    return dg.MetadataValue.md("\n".join(lines))
