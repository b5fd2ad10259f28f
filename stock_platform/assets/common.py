"""What every partitioned asset shares: the partitions, the single-run backfill policy, and the
list of days a run covers."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from stock_platform.partitions import DAILY_PARTITIONS, parse_partition_key

# One run per backfill range: one Spark session and one dbt invocation for the whole range.
PARTITIONED = dict(partitions_def=DAILY_PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())


def run_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The partition days of this run, oldest first."""
    return [parse_partition_key(key) for key in context.partition_keys]


def day_table(rows: dict[dt.date, dict[str, object]]) -> dg.MetadataValue:
    """Per-day figures as a Markdown table (a range run records one event per partition)."""
    if not rows:
        return dg.MetadataValue.md("(no days)")
    columns = list(next(iter(rows.values())))
    lines = ["| day | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for day, values in rows.items():
        lines.append(f"| {day} | " + " | ".join(str(values[c]) for c in columns) + " |")
    return dg.MetadataValue.md("\n".join(lines))
