"""Loading a domain's clean lake partitions into its warehouse table: what every domain's
warehouse asset does, whatever the table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import dagster as dg

from stock_platform.platform.lake import Lake
from stock_platform.platform.partitions import record_days, run_days
from stock_platform.platform.resources.interfaces import WarehouseResource
from stock_platform.platform.warehouse import WarehouseTable


@dataclass(frozen=True)
class LoadedRange:
    first: dt.date
    last: dt.date
    table_name: str
    inserted: int
    clean_rows: int  # what the clean manifests of the range hold
    stats: dict[str, int]  # the loaded range's rows ("rows") and rows breaking each rule

    def metadata(self, table: WarehouseTable) -> dict[str, Any]:
        return {
            "dagster/table_name": self.table_name,
            "dagster/column_schema": table.table_schema(),
            "first_day": self.first.isoformat(),
            "last_day": self.last.isoformat(),
        }


def load_clean_partitions(
    context: dg.AssetExecutionContext,
    store: Lake,
    warehouse: WarehouseResource,
    table: WarehouseTable,
    clean: str,
    rules: dict[str, str],
) -> LoadedRange:
    """Replace the run's days of `table` with the published clean partitions of dataset `clean`
    (atomically: see the warehouse implementations), record each day's rows on its partition, and
    count the loaded rows breaking each named SQL rule in `rules`."""
    days = run_days(context)
    read = {day: store.manifest(clean, day) for day in days}
    missing = [day.isoformat() for day, manifest in read.items() if manifest is None]
    if missing:
        raise dg.Failure(
            f"{clean} is not published for {', '.join(missing)} (no manifest under "
            f"{store.uri(clean)}); materialize the cleaning first"
        )
    manifests = {day: manifest for day, manifest in read.items() if manifest is not None}
    # Files and expected rows from the same manifests: a concurrent publish cannot mix versions.
    files_by_day = {day: store.version_files(clean, day, manifest) for day, manifest in manifests.items()}
    inserted = warehouse.replace_partitions(table, files_by_day)
    stats = warehouse.partition_stats(table, days[0], days[-1], rules)
    per_day = warehouse.rows_by_partition(table, days[0], days[-1])
    record_days(context, {day: {"dagster/row_count": per_day.get(day, 0)} for day in days})
    table_name = warehouse.table_name(table)
    context.log.info(f"Replaced {days[0]}..{days[-1]} in {table_name}: {inserted} rows")
    return LoadedRange(days[0], days[-1], table_name, inserted,
                       sum(manifest.rows for manifest in manifests.values()), stats)
