"""serving/<table>: each serving table published from its marts, partitioned like them.

A run reads its days from the warehouse and replaces them in PostgreSQL in one transaction
(platform/serving.py). A stock mart run rewrites the 364 days after its window too (their
lookback reaches it), so a stock serving run publishes those days as well: after any run the
serving table holds exactly the warehouse's rows. serving.stock_latest (each ticker's most recent
row) is updated in the same transaction, for the tickers of the published days only.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow as pa
from psycopg import sql

from stock_platform.defs.serving.tables import (
    MARKET_DAILY_SUMMARY,
    STOCK_DAILY_METRICS,
    WEB_DAILY_TRAFFIC,
    ServingTable,
)
from stock_platform.defs.stock_prices.partitions import PARTITIONED as STOCK_PARTITIONED
from stock_platform.defs.web_traffic.partitions import PARTITIONED as WEB_PARTITIONED
from stock_platform.platform.k8s import k8s_op_tags
from stock_platform.platform.lookback import later_partitions
from stock_platform.platform.partitions import record_days, run_days
from stock_platform.platform.resources.interfaces import WarehouseResource
from stock_platform.platform.serving import ServingDatabaseResource, arrow_schema, migrate, publish

MIGRATIONS = Path(__file__).parents[2] / "migrations" / "serving"

# A partition is published after its marts' partitions change, however they changed (the daily
# schedule, a backfill, a correction), since the last time it was requested or published; not
# while they are being built. Unlike eager(), any partition, not only the latest: a backfill of
# the marts republishes its range (one backfill: the automation sensor groups the partitions).
AFTER_ITS_MARTS = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after_its_marts")

# Each ticker's latest row, recomputed for the tickers that had a row in the published days
# before or have one now (an index lookup per ticker, whatever the history's length); then the
# rows of tickers left without any row go.
UPSERT_LATEST = """
INSERT INTO serving.stock_latest
SELECT latest.*
FROM (
    SELECT ticker FROM serving.stock_latest WHERE trade_date BETWEEN %(first)s AND %(last)s
    UNION
    SELECT DISTINCT ticker FROM serving.stock_daily_metrics WHERE trade_date BETWEEN %(first)s AND %(last)s
) AS affected
CROSS JOIN LATERAL (
    SELECT * FROM serving.stock_daily_metrics AS metrics
    WHERE metrics.ticker = affected.ticker
    ORDER BY metrics.trade_date DESC
    LIMIT 1
) AS latest
ON CONFLICT (ticker) DO UPDATE SET ({columns}) = ROW({excluded})
"""
DELETE_VANISHED_LATEST = sql.SQL("""
DELETE FROM serving.stock_latest AS latest
WHERE latest.trade_date BETWEEN %(first)s AND %(last)s
    AND NOT EXISTS (
        SELECT FROM serving.stock_daily_metrics AS metrics
        WHERE metrics.ticker = latest.ticker AND metrics.trade_date = latest.trade_date
    )
""")


def refresh_latest_statements() -> list[sql.Composed | sql.SQL]:
    columns = [name for name in STOCK_DAILY_METRICS.column_names if name != "ticker"]
    upsert = sql.SQL(UPSERT_LATEST).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        excluded=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in columns),
    )
    return [upsert, DELETE_VANISHED_LATEST]


def read_rows(warehouse: WarehouseResource, table: ServingTable, first: dt.date, last: dt.date) -> pa.Table:
    """The table's rows for [first, last] from its marts, joined on its key, in its column order."""
    rows = warehouse.read_range(table.marts[0], first, last).cast(arrow_schema(table.marts[0]))
    for mart in table.marts[1:]:
        extra = warehouse.read_range(mart, first, last).cast(arrow_schema(mart))
        rows = rows.join(extra, keys=list(table.key), join_type="left outer")
    return rows.select(table.column_names)


def serving_asset(table: ServingTable, partitioned: dict) -> dg.AssetsDefinition:
    key = dg.AssetKey(["serving", table.name])

    @dg.asset(
        key=key,
        deps=list(table.upstream),
        group_name="serving",
        kinds={"postgres"},
        # It reads the warehouse: locally a DuckDB file, which admits one process at a time.
        pool="warehouse",
        automation_condition=AFTER_ITS_MARTS,
        op_tags=k8s_op_tags(cpu="250m", cpu_limit="1", memory="1Gi"),
        description=f"serving.{table.name} in PostgreSQL: the rows of "
        f"{', '.join(m.qualified_name for m in table.marts)}, each run's days replaced in one transaction.",
        **partitioned,
    )
    def publish_table(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, serving_db: ServingDatabaseResource
    ):
        days = run_days(context)
        first, last = days[0], days[-1] + table.lookahead
        rows = read_rows(warehouse, table, first, last)
        revision = migrate(serving_db.connect, MIGRATIONS)
        window = {"first": first, "last": last}
        then = []
        if table is STOCK_DAILY_METRICS:
            then = [(statement, window) for statement in refresh_latest_statements()]
        with serving_db.connect() as conn:
            copied = publish(conn, table.qualified_name, table.date_column, first, last, rows, then)
        counts = rows.group_by(table.date_column).aggregate([([], "count_all")])
        per_day = dict(zip(counts[table.date_column].to_pylist(), counts["count_all"].to_pylist()))
        record_days(context, {day: {"dagster/row_count": per_day.get(day, 0)} for day in days})
        yield dg.MaterializeResult(
            metadata={
                "published_rows": copied,
                "published_days": f"{first.isoformat()}..{last.isoformat()}",
                "dagster/table_name": table.qualified_name,
                "schema_revision": revision,
            }
        )
        if table.lookahead:
            partitions_def = partitioned["partitions_def"]
            for partition in later_partitions(context.instance, key, partitions_def, days[-1], table.lookahead):
                yield dg.AssetMaterialization(
                    asset_key=key, partition=partition,
                    description="Republished by a run whose marts rewrote this partition",
                )

    return publish_table


stock_daily_metrics = serving_asset(STOCK_DAILY_METRICS, STOCK_PARTITIONED)
market_daily_summary = serving_asset(MARKET_DAILY_SUMMARY, STOCK_PARTITIONED)
web_daily_traffic = serving_asset(WEB_DAILY_TRAFFIC, WEB_PARTITIONED)
