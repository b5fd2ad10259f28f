"""web_raw/access_logs: the clean Parquet loaded into the warehouse, replaced per partition."""

import dagster as dg

from stock_platform.defs.web_traffic.cleaning import clean_web_access_logs
from stock_platform.defs.web_traffic.partitions import PARTITIONED
from stock_platform.defs.web_traffic.schema import ACCESS_LOGS, CLEAN
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.loads import load_clean_partitions
from stock_platform.platform.resources.interfaces import LakeResource, WarehouseResource

KEY = dg.AssetKey(["web_raw", "access_logs"])
# What leaves the raw lake of a client address is its network, never the address itself.
CLIENT_PREFIX_RULE = "client_prefix LIKE '%/24' OR client_prefix LIKE '%/48'"


@dg.asset(
    key=KEY,
    deps=[clean_web_access_logs],
    group_name="web_traffic",
    kinds={"duckdb", "bigquery"},
    pool="warehouse",
    op_tags=k8s_op_tags(cpu="250m", cpu_limit="1", memory="512Mi"),
    description="One row per request (log_date, source_file, line_number); partitions replaced "
    "atomically. Client networks and visitor ids only: no IP address reaches the warehouse.",
    check_specs=[
        dg.AssetCheckSpec("row_count_matches_clean", asset=KEY,
                          description="The loaded range has exactly the rows of clean_web_access_logs."),
        dg.AssetCheckSpec("client_prefix_is_a_network", asset=KEY,
                          description="Every client_prefix is an IPv4 /24 or IPv6 /48 network, never an address."),
    ],
    **PARTITIONED,
)
def access_logs(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    loaded = load_clean_partitions(
        context, lake.get(), warehouse, ACCESS_LOGS, CLEAN, {"bad_prefixes": CLIENT_PREFIX_RULE}
    )
    return dg.MaterializeResult(
        metadata=loaded.metadata(ACCESS_LOGS),
        check_results=[
            dg.AssetCheckResult(
                check_name="row_count_matches_clean",
                passed=loaded.stats["rows"] == loaded.clean_rows,
                metadata={"warehouse_rows": loaded.stats["rows"], "clean_rows": loaded.clean_rows},
            ),
            dg.AssetCheckResult(
                check_name="client_prefix_is_a_network",
                passed=loaded.stats["bad_prefixes"] == 0,
                metadata={"rows_with_another_value": loaded.stats["bad_prefixes"]},
            ),
        ],
    )
