"""web_raw/access_logs: the clean Parquet loaded into the warehouse, replaced per partition."""

import dagster as dg

from stock_platform.defs.web_traffic.cleaning import clean_web_access_logs
from stock_platform.defs.web_traffic.partitions import PARTITIONED
from stock_platform.defs.web_traffic.schema import ACCESS_LOGS, CLEAN
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.partitions import record_days, run_days
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
    store = lake.get()
    days = run_days(context)
    read = {day: store.manifest(CLEAN, day) for day in days}
    missing = [day.isoformat() for day, manifest in read.items() if manifest is None]
    if missing:
        raise dg.Failure(
            f"clean_web_access_logs is not materialized for {', '.join(missing)}; materialize it first"
        )
    manifests = {day: manifest for day, manifest in read.items() if manifest is not None}
    files_by_day = {day: store.version_files(CLEAN, day, manifest) for day, manifest in manifests.items()}
    expected = sum(manifest.rows for manifest in manifests.values())

    inserted = warehouse.replace_partitions(ACCESS_LOGS, files_by_day)
    stats = warehouse.partition_stats(
        ACCESS_LOGS, days[0], days[-1], {"bad_prefixes": CLIENT_PREFIX_RULE}
    )
    per_day = warehouse.rows_by_partition(ACCESS_LOGS, days[0], days[-1])
    record_days(context, {day: {"dagster/row_count": per_day.get(day, 0)} for day in days})
    table_name = warehouse.table_name(ACCESS_LOGS)
    context.log.info(f"Replaced {days[0]}..{days[-1]} in {table_name}: {inserted} rows")
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": table_name,
            "dagster/column_schema": ACCESS_LOGS.table_schema(),
            "first_day": days[0].isoformat(),
            "last_day": days[-1].isoformat(),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="row_count_matches_clean",
                passed=stats["rows"] == expected,
                metadata={"warehouse_rows": stats["rows"], "clean_rows": expected},
            ),
            dg.AssetCheckResult(
                check_name="client_prefix_is_a_network",
                passed=stats["bad_prefixes"] == 0,
                metadata={"rows_with_another_value": stats["bad_prefixes"]},
            ),
        ],
    )
