"""stock_raw/daily_prices: the clean Parquet loaded into the warehouse, replaced per partition."""


import dagster as dg

from stock_platform.defs.stock_prices.cleaning import clean_stock_prices
from stock_platform.defs.stock_prices.partitions import PARTITIONED
from stock_platform.defs.stock_prices.schema import CLEAN, DAILY_PRICES
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.partitions import record_days, run_days
from stock_platform.platform.resources.interfaces import LakeResource, WarehouseResource

KEY = dg.AssetKey(["stock_raw", "daily_prices"])
MARKET_CAP_RULE = "market_cap = close * listed_shares"


@dg.asset(
    key=KEY,
    deps=[clean_stock_prices],
    group_name="stock_prices",
    kinds={"duckdb", "bigquery"},  # DuckDB locally, BigQuery in gcp
    pool="warehouse",
    # BigQuery load jobs: the pod only submits and waits.
    op_tags=k8s_op_tags(cpu="250m", cpu_limit="1", memory="512Mi"),
    description="One row per (trade_date, ticker); partitions replaced atomically.",
    check_specs=[
        dg.AssetCheckSpec("market_cap_equals_close_times_shares", asset=KEY,
                          description="market_cap = close * listed_shares on every loaded row."),
        dg.AssetCheckSpec("row_count_matches_clean", asset=KEY,
                          description="The loaded range has exactly the rows of clean_stock_prices."),
    ],
    **PARTITIONED,
)
def daily_prices(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    store = lake.get()
    days = run_days(context)
    read = {day: store.manifest(CLEAN, day) for day in days}
    missing = [day.isoformat() for day, manifest in read.items() if manifest is None]
    if missing:
        raise dg.Failure(
            f"clean_stock_prices is not materialized for {', '.join(missing)}; materialize it first"
        )
    manifests = {day: manifest for day, manifest in read.items() if manifest is not None}
    # Files and expected rows from the same manifests: a concurrent publish cannot mix versions.
    files_by_day = {day: store.version_files(CLEAN, day, manifest) for day, manifest in manifests.items()}
    expected = sum(manifest.rows for manifest in manifests.values())

    inserted = warehouse.replace_partitions(DAILY_PRICES, files_by_day)
    stats = warehouse.partition_stats(
        DAILY_PRICES, days[0], days[-1], {"market_cap_mismatches": MARKET_CAP_RULE}
    )
    table_name = warehouse.table_name(DAILY_PRICES)
    per_day = warehouse.rows_by_partition(DAILY_PRICES, days[0], days[-1])
    record_days(context, {day: {"dagster/row_count": per_day.get(day, 0)} for day in days})
    context.log.info(f"Replaced {days[0]}..{days[-1]} in {table_name}: {inserted} rows")
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": table_name,
            "dagster/column_schema": DAILY_PRICES.table_schema(),
            "first_day": days[0].isoformat(),
            "last_day": days[-1].isoformat(),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="market_cap_equals_close_times_shares",
                passed=stats["market_cap_mismatches"] == 0,
                metadata={"mismatched_rows": stats["market_cap_mismatches"]},
            ),
            dg.AssetCheckResult(
                check_name="row_count_matches_clean",
                passed=stats["rows"] == expected,
                metadata={"warehouse_rows": stats["rows"], "clean_rows": expected},
            ),
        ],
    )
