"""clean_stock_prices: Spark turns raw pages into typed Parquet (clean/) and quarantines bad rows
with their reasons (rejected/)."""


import collections
import datetime as dt
import time
from typing import Any

import dagster as dg

from stock_platform.defs.stock_prices.ingestion import raw_stock_prices
from stock_platform.defs.stock_prices.partitions import PARTITIONED
from stock_platform.defs.stock_prices.schema import CLEAN, DAILY_PRICES, RAW, REJECTED
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.lake import Lake
from stock_platform.platform.partitions import record_days, run_days
from stock_platform.platform.resources.interfaces import LakeResource, SparkResource
from stock_platform.platform.staging import new_staging, publish_staged

# The Spark job (spark/transform.py), run in-process or on a cluster by the Spark resource.
CLEANING_JOB = "stock_platform.defs.stock_prices.spark.transform:clean_pages"


def raw_pages(lake: Lake, days) -> list[dict[str, str]]:
    """The raw page files of `days` as the cleaning job takes them (JSON values)."""
    pages, missing = [], []
    for day in days:
        manifest = lake.manifest(RAW, day)
        if manifest is None:
            missing.append(day.isoformat())
            continue
        base = lake.partition_dir(RAW, day)
        for page in manifest.details.get("pages", []):
            pages.append({"uri": lake.uri(f"{base}/{page['file']}"), "partition": day.isoformat(),
                          "fetched_at": page["fetched_at"]})
    if missing:
        raise dg.Failure(
            f"raw_stock_prices is not materialized for {', '.join(missing)} "
            f"(no manifest under {lake.uri(RAW)}); materialize it first"
        )
    return pages


@dg.asset(
    key="clean_stock_prices",
    deps=[raw_stock_prices],
    group_name="stock_prices",
    kinds={"spark", "parquet"},
    # The Spark driver (local[*] runs the whole job here; on Kubernetes only the driver).
    op_tags=k8s_op_tags(cpu="2", cpu_limit="4", memory="8Gi", spark_driver=True),
    description="Typed, deduplicated, validated prices (Parquet, zstd) in lake clean/; "
    "rows failing validation go to rejected/ with a reason.",
    check_specs=[
        dg.AssetCheckSpec("no_rejected_rows", asset="clean_stock_prices",
                          description="Warns with counts by reason when rows were quarantined.")
    ],
    **PARTITIONED,
)
def clean_stock_prices(
    context: dg.AssetExecutionContext, spark: SparkResource, lake: LakeResource
) -> dg.MaterializeResult:
    store = lake.get()
    days = run_days(context)
    pages = raw_pages(store, days)
    staging = new_staging(context.run.run_id)
    if pages:
        started = time.monotonic()
        spark.run(context, CLEANING_JOB, {"pages": pages, "staging_uri": store.uri(staging)})
        context.log.info(f"Spark cleaned {len(pages)} pages in {time.monotonic() - started:.1f} s")

    published = publish_staged(context, store, staging, days, RAW, CLEAN, REJECTED, "reject_reason")
    stats: dict[dt.date, dict[str, Any]] = {
        day: {"status": result.status, "dagster/row_count": result.clean_rows,
              "rejected_rows": result.rejected_rows}
        for day, result in published.items()
    }
    reasons: collections.Counter[str] = sum((r.reasons for r in published.values()), collections.Counter())

    rows = sum(s["dagster/row_count"] for s in stats.values())
    rejected = sum(s["rejected_rows"] for s in stats.values())
    top_reasons = {reason: count for reason, count in reasons.most_common(20)}
    record_days(context, stats)
    context.log.info(f"Published {rows} clean and {rejected} rejected rows for {len(days)} days")
    return dg.MaterializeResult(
        metadata={
            "lake_path": dg.MetadataValue.path(store.uri(CLEAN)),
            "rejected_path": dg.MetadataValue.path(store.uri(REJECTED)),
            "dagster/column_schema": DAILY_PRICES.table_schema(),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_rejected_rows",
                passed=rejected == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"rejected_rows": rejected, "clean_rows": rows,
                          "by_reason": dg.MetadataValue.json(top_reasons)},
            )
        ],
    )
