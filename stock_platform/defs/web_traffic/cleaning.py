"""clean_web_access_logs: Spark parses the raw log files into typed Parquet (clean/) and
quarantines the lines it cannot use, with their reason (rejected/)."""

import collections
import datetime as dt
import time
from typing import Any

import dagster as dg

from stock_platform.defs.web_traffic.ingestion import raw_web_access_logs
from stock_platform.defs.web_traffic.partitions import PARTITIONED
from stock_platform.defs.web_traffic.schema import ACCESS_LOGS, CLEAN, RAW, REJECT_REASONS, REJECTED
from stock_platform.defs.web_traffic.settings import web_settings
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.lake import Lake
from stock_platform.platform.partitions import record_days, run_days
from stock_platform.platform.resources.interfaces import LakeResource, SparkResource
from stock_platform.platform.staging import new_staging, publish_staged

# The Spark job (spark/cleaning.py), run in-process or on a cluster by the Spark resource.
CLEANING_JOB = "stock_platform.defs.web_traffic.spark.cleaning:clean_logs"


def raw_files(lake: Lake, days: list[dt.date]) -> list[dict[str, Any]]:
    """The raw log files of `days` as the cleaning job takes them (JSON values)."""
    files, missing = [], []
    for day in days:
        manifest = lake.manifest(RAW, day)
        if manifest is None:
            missing.append(day.isoformat())
            continue
        base = lake.partition_dir(RAW, day)
        for file in manifest.details["files"]:
            files.append({"uri": lake.uri(f"{base}/{file['file']}"), "partition": day.isoformat(),
                          "name": file["name"], "lines": file["lines"]})
    if missing:
        raise dg.Failure(
            f"raw_web_access_logs is not materialized for {', '.join(missing)} "
            f"(no manifest under {lake.uri(RAW)}); materialize it first"
        )
    return files


@dg.asset(
    key="clean_web_access_logs",
    deps=[raw_web_access_logs],
    group_name="web_traffic",
    kinds={"spark", "parquet"},
    op_tags=k8s_op_tags(cpu="2", cpu_limit="4", memory="8Gi", spark_driver=True),
    description="Parsed requests (Parquet, zstd) in lake clean/: client networks and keyed visitor "
    "ids instead of IPs, user agents parsed. Lines that cannot be used go to rejected/ with their "
    "reason and the line as received.",
    check_specs=[
        dg.AssetCheckSpec("no_rejected_lines", asset="clean_web_access_logs",
                          description="Warns with counts by reason when lines were quarantined.")
    ],
    **PARTITIONED,
)
def clean_web_access_logs(
    context: dg.AssetExecutionContext, spark: SparkResource, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.get()
    days = run_days(context)
    settings = web_settings()
    files = raw_files(store, days)
    staging = new_staging(context.run.run_id)
    started = time.monotonic()
    spark.run(context, CLEANING_JOB, {
        "files": files,
        "staging_uri": store.uri(staging),
        "timezone": settings.timezone,
        "ip_salt_secret": settings.ip_salt_secret or None,  # the secret's name, never its value
    })
    seconds = time.monotonic() - started
    context.log.info(f"Spark parsed {len(files)} files in {seconds:.1f} s")

    published = publish_staged(context, store, staging, days, RAW, CLEAN, REJECTED, "reason")
    stats: dict[dt.date, dict[str, Any]] = {
        day: {"dagster/row_count": result.clean_rows, "rejected_lines": result.rejected_rows,
              "rejected_by_reason": dg.MetadataValue.json(dict(sorted(result.reasons.items())))}
        for day, result in published.items()
    }
    total_reasons: collections.Counter[str] = sum((r.reasons for r in published.values()), collections.Counter())

    rows = sum(s["dagster/row_count"] for s in stats.values())
    rejected = sum(s["rejected_lines"] for s in stats.values())
    record_days(context, stats)
    by_reason = {reason: total_reasons[reason] for reason in REJECT_REASONS if total_reasons[reason]}
    context.log.info(f"Published {rows} requests and {rejected} rejected lines for {len(days)} days")
    return dg.MaterializeResult(
        metadata={
            "lake_path": dg.MetadataValue.path(store.uri(CLEAN)),
            "rejected_path": dg.MetadataValue.path(store.uri(REJECTED)),
            "dagster/column_schema": ACCESS_LOGS.table_schema(),
            "spark_seconds": round(seconds, 1),
            "lines_per_second": round((rows + rejected) / seconds) if seconds else 0,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_rejected_lines",
                passed=rejected == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"rejected_lines": rejected, "clean_rows": rows,
                          "by_reason": dg.MetadataValue.json(by_reason)},
            )
        ],
    )
