"""The weekly maintenance job: deletes finished runs older than RUN_RETENTION_DAYS with their
event logs and step logs, and collects the lake: old versions of every partition, rejected/
partitions older than LAKE_REJECTED_RETENTION_DAYS, and the web domain's raw and rejected logs
(full client IPs) older than WEB_RAW_RETENTION_DAYS. Schedule and sensor ticks are purged by the
instance's own retention settings (platform/dagster.yaml, deploy/helm/values.yaml)."""

import datetime as dt

import dagster as dg

from stock_platform.defs.web_traffic.settings import lake_retention as web_lake_retention
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.maintenance import collect_lake, delete_runs_before
from stock_platform.platform.resources.interfaces import LakeResource
from stock_platform.platform.settings import platform_settings

# A version older than the published one is kept this long for readers that read the previous
# manifest just before a publish.
VERSION_GRACE = dt.timedelta(days=1)
LIGHT = k8s_op_tags(cpu="250m", cpu_limit="1", memory="1Gi")


def retention_for(datasets: list[str]) -> dict[str, int]:
    """Days each dataset of the lake keeps its partitions: a domain's own rule, else
    LAKE_REJECTED_RETENTION_DAYS for a rejected/ dataset; the others are kept."""
    own = web_lake_retention()
    rejected = platform_settings().rejected_retention_days
    return {d: own.get(d, rejected) for d in datasets if d in own or d.startswith("rejected/")}


@dg.op(tags=LIGHT)
def delete_old_runs(context: dg.OpExecutionContext) -> None:
    days = platform_settings().run_retention_days
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    deleted = delete_runs_before(context.instance, cutoff)
    context.log.info(f"Deleted {deleted} finished runs last updated before {cutoff:%Y-%m-%d} ({days} days)")
    context.add_output_metadata({"runs_deleted": deleted, "retention_days": days})


@dg.op(tags=LIGHT)
def collect_lake_data(context: dg.OpExecutionContext, lake: LakeResource) -> None:
    store = lake.get()
    rules = retention_for(store.datasets())
    result = collect_lake(store, dt.datetime.now(dt.UTC), rules, VERSION_GRACE)
    context.log.info(f"Checked {result.partitions_checked} lake partitions; deleted "
                     f"{result.partitions_expired} past their retention ({rules})")
    context.add_output_metadata({"partitions_checked": result.partitions_checked,
                                 "partitions_expired": result.partitions_expired,
                                 "retention_days": dg.MetadataValue.json(rules)})


@dg.job(description="Retention: old runs and their logs, old lake versions, lake data past its retention.")
def maintenance() -> None:
    delete_old_runs()
    collect_lake_data()


weekly_maintenance = dg.ScheduleDefinition(
    job=maintenance,
    cron_schedule="0 4 * * 0",  # Sunday 04:00, between the daily runs
    execution_timezone="Asia/Seoul",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
