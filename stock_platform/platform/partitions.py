"""What every partitioned asset shares: one run per backfill range, the days a run covers, and
each partition's own metadata."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

from stock_platform.platform.calendars import parse_partition_key


def single_run(partitions_def: dg.PartitionsDefinition) -> dict[str, Any]:
    """Asset arguments for `partitions_def` with one run per backfill range: one Spark session and
    one dbt invocation for the whole range, however many partitions it has."""
    return {"partitions_def": partitions_def, "backfill_policy": dg.BackfillPolicy.single_run()}


def run_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The partition days of this run, oldest first."""
    return [parse_partition_key(key) for key in context.partition_keys]


def record_days(context: dg.AssetExecutionContext, figures: dict[dt.date, dict[str, Any]]) -> None:
    """Each partition's own figures on its own materialization event.

    A range run records one event per partition; run-wide metadata would be copied into every
    one of them (a table of all days in each event grows as days squared)."""
    for day, values in figures.items():
        context.add_asset_metadata(values, partition_key=day.isoformat())
