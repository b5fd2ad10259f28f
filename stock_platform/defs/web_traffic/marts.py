"""The domain's dbt models as assets: web_analytics/<model>, the star schema, built per partition
window (dbt_project/models/web_traffic).

Every web mart row of day D is computed from the requests of day D alone (sessions end at
midnight in WEB_LOGS_TIMEZONE), so a window run rewrites exactly its days: no lookback.
"""

import datetime as dt

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from stock_platform.defs.web_traffic.partitions import PARTITIONED
from stock_platform.defs.web_traffic.settings import web_settings
from stock_platform.platform.dbt import PlatformDbtTranslator, build_args, dbt_project
from stock_platform.platform.k8s import k8s_op_tags

# Yesterday's marts are expected by 03:00 in WEB_LOGS_TIMEZONE (the schedule runs at 01:00).
MARTS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 3 * * *", lower_bound_delta=dt.timedelta(hours=3), timezone=web_settings().timezone
)

TRANSLATOR = PlatformDbtTranslator(
    key_prefix="web_analytics", group="web_traffic", freshness={"marts": MARTS_FRESHNESS}
)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select="path:models/web_traffic",
    dagster_dbt_translator=TRANSLATOR,
    name="web_analytics_dbt",
    pool="warehouse",
    op_tags=k8s_op_tags(cpu="500m", cpu_limit="1", memory="1Gi"),
    **PARTITIONED,
)
def web_analytics_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    events = dbt.cli(build_args(context.partition_time_window), context=context).stream()
    if len(context.partition_keys) == 1:
        # Row counts and column metadata on daily runs only (see the stock marts for why).
        events = events.fetch_row_counts().fetch_column_metadata()
    yield from events
