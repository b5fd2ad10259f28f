"""stock_raw/daily_prices: the clean Parquet loaded into the warehouse, replaced per partition."""


import dagster as dg

from stock_platform.defs.stock_prices.cleaning import clean_stock_prices
from stock_platform.defs.stock_prices.partitions import PARTITIONED
from stock_platform.defs.stock_prices.schema import CLEAN, DAILY_PRICES
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.loads import load_clean_partitions
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
    loaded = load_clean_partitions(
        context, lake.get(), warehouse, DAILY_PRICES, CLEAN, {"market_cap_mismatches": MARKET_CAP_RULE}
    )
    return dg.MaterializeResult(
        metadata=loaded.metadata(DAILY_PRICES),
        check_results=[
            dg.AssetCheckResult(
                check_name="market_cap_equals_close_times_shares",
                passed=loaded.stats["market_cap_mismatches"] == 0,
                metadata={"mismatched_rows": loaded.stats["market_cap_mismatches"]},
            ),
            dg.AssetCheckResult(
                check_name="row_count_matches_clean",
                passed=loaded.stats["rows"] == loaded.clean_rows,
                metadata={"warehouse_rows": loaded.stats["rows"], "clean_rows": loaded.clean_rows},
            ),
        ],
    )
