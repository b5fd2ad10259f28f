"""raw_web_access_logs: each day's log files stored byte for byte in the lake (raw/)."""

import datetime as dt
import gzip
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

from stock_platform.defs.web_traffic.partitions import PARTITIONED
from stock_platform.defs.web_traffic.resources import WebLogSourceResource
from stock_platform.defs.web_traffic.schema import RAW
from stock_platform.defs.web_traffic.settings import web_settings
from stock_platform.defs.web_traffic.sources.access_log import nonempty_lines
from stock_platform.platform.failpoints import failpoint
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.lake import Manifest, new_version
from stock_platform.platform.partitions import record_days, run_days
from stock_platform.platform.resources.interfaces import LakeResource


class NotDeliveredYet(dg.Failure):
    pass


# The web servers deliver day D's logs shortly after midnight. From the 01:00 schedule a missing
# day is retried with exponential backoff (01:10, 01:30, 02:10, 03:30) until 06:00 the next day
# in WEB_LOGS_TIMEZONE; the attempt after the deadline (06:10) fails for good.
DELIVERY_DEADLINE = dt.time(6, 0)
NOT_DELIVERED_RETRY = dg.RetryPolicy(max_retries=5, delay=10 * 60, backoff=dg.Backoff.EXPONENTIAL)


def delivery_deadline(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), DELIVERY_DEADLINE, ZoneInfo(web_settings().timezone))


def now_in_log_zone() -> dt.datetime:
    return dt.datetime.now(ZoneInfo(web_settings().timezone))


def decompressed(name: str, data: bytes) -> bytes:
    return gzip.decompress(data) if name.endswith(".gz") else data


@dg.asset(
    key="raw_web_access_logs",
    group_name="web_traffic",
    kinds={"python", "text"},
    op_tags=k8s_op_tags(cpu="500m", cpu_limit="1", memory="2Gi"),
    retry_policy=NOT_DELIVERED_RETRY,
    description="The web servers' access log files as delivered, byte for byte, per day, in lake raw/.",
    **PARTITIONED,
)
def raw_web_access_logs(
    context: dg.AssetExecutionContext, web_log_source: WebLogSourceResource, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.get()
    days = run_days(context)
    stats: dict[dt.date, dict[str, Any]] = {}
    missing: list[dt.date] = []
    for day in days:
        files = web_log_source.day_files(day)
        if not files:
            missing.append(day)  # never an empty success; the run fails below
            continue
        version = new_version()
        details: list[dict[str, Any]] = []
        for name, data in files.items():
            store.write_bytes(f"{store.version_dir(RAW, day, version)}/{name}", data)
            details.append({"file": f"v={version}/{name}", "name": name, "bytes": len(data),
                            "lines": nonempty_lines(decompressed(name, data))})
        lines = sum(file["lines"] for file in details)
        failpoint(f"raw_web_access_logs.before_publish:{day}")  # files written, day unpublished
        store.publish(Manifest(RAW, day, version, [f["file"] for f in details], lines, "ok",
                               {"files": details}))
        stats[day] = {"files": len(details), "bytes": sum(f["bytes"] for f in details),
                      "dagster/row_count": lines}
    if missing:
        names = ", ".join(day.isoformat() for day in missing)
        where = web_log_source.describe(missing[0])
        deadline = delivery_deadline(missing[0])
        if now_in_log_zone() >= deadline:
            raise NotDeliveredYet(
                description=(
                    f"not delivered by the deadline: no log file for {names} ({where}) at "
                    f"{deadline:%Y-%m-%d %H:%M %Z}. Giving up; check the delivery, then re-run "
                    "the partition(s)."
                ),
                allow_retries=False,
            )
        raise NotDeliveredYet(
            description=(
                f"not delivered yet: no log file for {names} ({where}). Retrying with backoff "
                f"until {deadline:%Y-%m-%d %H:%M %Z}."
            ),
            allow_retries=True,
        )
    record_days(context, stats)
    context.log.info(
        f"Stored {sum(s['files'] for s in stats.values())} files, "
        f"{sum(s['dagster/row_count'] for s in stats.values())} lines, for {len(days)} days"
    )
    return dg.MaterializeResult(metadata={"lake_path": dg.MetadataValue.path(store.uri(RAW))})
