"""What every partitioned asset shares: the partitions, the single-run backfill policy, the list
of days a run covers and its per-day metadata."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from stock_platform.partitions import DAILY_PARTITIONS, parse_partition_key

# One run per backfill range: one Spark session and one dbt invocation for the whole range.
PARTITIONED = dict(partitions_def=DAILY_PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())


def run_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The partition days of this run, oldest first."""
    return [parse_partition_key(key) for key in context.partition_keys]


def record_days(context: dg.AssetExecutionContext, figures: dict[dt.date, dict[str, object]]) -> None:
    """Each partition's own figures on its own materialization event.

    A range run records one event per partition; run-wide metadata would be copied into every
    one of them (a table of all days in each event grows as days squared: 400 MB of event log
    for a ten-year run)."""
    for day, values in figures.items():
        context.add_asset_metadata(values, partition_key=day.isoformat())
