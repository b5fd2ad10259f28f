"""The domain's dbt models as assets: stock_analytics/<model>, built incrementally per partition
window (dbt_project/models/stock_prices)."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliInvocation, DbtCliResource, dbt_assets

from stock_platform.defs.stock_prices.partitions import PARTITIONED, STOCK_PARTITIONS
from stock_platform.defs.stock_prices.warehouse import KEY as DAILY_PRICES_KEY
from stock_platform.platform.dbt import PlatformDbtTranslator, build_args, dbt_project, window_vars
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.lookback import later_partitions, lookback_mapping, lookback_staleness_check

# A mart row of day P is computed from the days [P - 364, P] (the 52-week range is the longest
# lookback; dbt macro stock_52w_days). 364 days are 52 weeks: 260 weekday partitions before P.
LOOKBACK = dt.timedelta(days=364)
LOOKBACK_PARTITIONS = 52 * 5

TRANSLATOR = PlatformDbtTranslator(
    key_prefix="stock_analytics",
    group="stock_prices",
    # Freshness: a check on the trading calendar (freshness.py), not a cron policy.
    lookback={"marts": lookback_mapping(LOOKBACK_PARTITIONS)},
)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select="path:models/stock_prices",
    dagster_dbt_translator=TRANSLATOR,
    name="stock_analytics_dbt",
    pool="warehouse",
    # dbt compiles and submits SQL; BigQuery does the work.
    op_tags=k8s_op_tags(cpu="500m", cpu_limit="1", memory="1Gi"),
    **PARTITIONED,
)
def stock_analytics_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    window = window_vars(context.partition_time_window)
    invocation = dbt.cli(build_args(context.partition_time_window), context=context)
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
            yield from _with_rewrites(context, event, window)
    for event in held:
        if isinstance(event, dg.Output):
            preview = market_summary_preview(invocation, window["max_date"])
            event = event.with_metadata({**event.metadata, "preview": preview})
        yield from _with_rewrites(context, event, window)


def _with_rewrites(context: dg.AssetExecutionContext, event: Any, window: dict[str, str]) -> Iterator[Any]:
    """The event, then, after a mart's output, the later partitions it rewrote (yielded at once:
    a failing dbt test ends the stream with an error, and those days are rewritten already)."""
    yield event
    if isinstance(event, dg.Output):
        key = context.asset_key_for_output(event.output_name)
        if key in LOOKBACK_KEYS:
            yield from rewritten_later_partitions(context, key, window)


def rewritten_later_partitions(
    context: dg.AssetExecutionContext, key: dg.AssetKey, window: dict[str, str]
) -> Iterator[dg.AssetMaterialization]:
    """A mart run rewrites the days after its window whose lookback reaches into it (dbt_project,
    macros/window.sql): the ones materialized before are recorded as materialized again, so that
    the lookback check (and the UI) know they were rebuilt."""
    last_day = dt.date.fromisoformat(window["max_date"])
    for partition in later_partitions(context.instance, key, STOCK_PARTITIONS, last_day, LOOKBACK):
        yield dg.AssetMaterialization(
            asset_key=key,
            partition=partition,
            description="Rewritten by a run whose window is in this partition's lookback",
            metadata={"rewritten_for_window": f"{window['min_date']}..{window['max_date']}"},
        )


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
    adapter = invocation.adapter
    if adapter is None:  # dagster-dbt could not open the adapter (it logged why)
        return dg.MetadataValue.md("No preview: the dbt adapter was not available.")
    with adapter.connection_named("market_summary_preview"):
        _, table = adapter.execute(sql, fetch=True)
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


# The models that look back (every mart: the translator gives their dependencies the lookback
# mapping), and a check on each that fails while one of its partitions was built before a later
# change to stock_raw/daily_prices in its lookback.
LOOKBACK_KEYS = [
    spec.key for spec in stock_analytics_dbt.specs
    if any(dep.partition_mapping is not None for dep in spec.deps)
]
lookback_check = lookback_staleness_check(
    "built_after_its_lookback", LOOKBACK_KEYS, DAILY_PRICES_KEY, LOOKBACK
)
