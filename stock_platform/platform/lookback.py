"""Partitions that look back: a partition computed from the days before it, as far back as a fixed
number of days (a moving average, a 52-week range).

A change to day D then affects every later partition whose lookback reaches D. Three parts keep
that visible and correct:

- `lookback_mapping`: the dependency as Dagster sees it, a time-window partition mapping over the
  lookback. It must not block a launch whose lookback reaches before the first partition.
- `later_partitions`: the partitions built before (latest run succeeded or failed) after a run's
  window whose lookback reaches into it. A run that rewrites them (the dbt marts do) records them
  as materialized.
- `lookback_staleness_check`: Dagster computes staleness only across edges with fewer than 100
  upstream partitions, so a year-long lookback is never flagged by Dagster itself. This check
  fails, naming them, while a partition was built before a later change to a day in its lookback.
"""

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

from stock_platform.platform.calendars import parse_partition_key
from stock_platform.platform.k8s import k8s_op_tags

# Page size when reading an asset's materialization records.
RECORDS_PAGE = 10_000
SHOWN = 20  # stale partitions listed in the check's metadata

# Evaluated when the checked asset or the upstream changes (since the check last ran or was
# requested), not while either is being materialized. Unlike eager(), it also runs when some
# upstream partitions were never materialized (they always are, in a platform's first year).
CHECK_AFTER_UPDATES = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after_updates")


def lookback_mapping(partitions: int) -> dg.TimeWindowPartitionMapping:
    """Each partition depends on itself and the `partitions` upstream partitions before it.

    Partitions before the first one do not exist: a partition whose lookback reaches before it (the
    first year of a new platform) can still be launched and backfilled."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-partitions, end_offset=0, allow_nonexistent_upstream_partitions=True
    )


def later_partitions(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    last_day: dt.date,
    lookback: dt.timedelta,
) -> list[str]:
    """The partitions of `key` in (last_day, last_day + lookback] that were built (their latest
    run succeeded or failed): the later days whose lookback reaches `last_day`."""
    partitions = [
        partition for partition in partitions_def.get_partition_keys()
        if last_day < parse_partition_key(partition) <= last_day + lookback
    ]
    if not partitions:
        return []
    # A partition whose latest run failed after an earlier success holds rows the run rewrote too.
    status = instance.get_status_by_partition(key, partitions, partitions_def) or {}
    built = (dg.AssetPartitionStatus.MATERIALIZED, dg.AssetPartitionStatus.FAILED)
    return [p for p in partitions if status.get(p) in built]


def latest_by_partition(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, int]:
    """The storage id of each partition's latest materialization of `key`. Storage ids grow with
    time: a larger one is a later event."""
    latest: dict[str, int] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key), limit=RECORDS_PAGE, cursor=cursor
        )
        for record in page.records:  # newest first
            if record.partition_key is not None:
                latest.setdefault(record.partition_key, record.storage_id)
        if not page.has_more:
            return latest
        cursor = page.cursor


def stale_partitions(
    built: Mapping[str, int], inputs: Mapping[str, int], lookback: dt.timedelta
) -> dict[str, str]:
    """{partition: the newest input day it missed} for each built partition P with an input day D
    in [P - lookback, P] whose latest change (storage id in `inputs`) is later than P's latest build
    (storage id in `built`)."""
    days = sorted((parse_partition_key(key), storage_id) for key, storage_id in inputs.items())
    input_days = [day for day, _ in days]
    stale = {}
    for key, built_at in built.items():
        day = parse_partition_key(key)
        lo = bisect.bisect_left(input_days, day - lookback)
        hi = bisect.bisect_right(input_days, day)
        missed = [input_day for input_day, changed_at in days[lo:hi] if changed_at > built_at]
        if missed:
            stale[key] = max(missed).isoformat()
    return stale


def lookback_staleness_check(
    name: str, assets: Sequence[dg.AssetKey], upstream: dg.AssetKey, lookback: dt.timedelta
) -> dg.AssetChecksDefinition:
    """One check per asset in `assets`, `name`: fails while a partition of the asset was built
    before the latest change to an `upstream` partition in its lookback.

    It runs in every run of the assets, and on its own (declarative automation) when `upstream`
    changes without them. It reads only the instance's event log."""
    specs = [
        dg.AssetCheckSpec(
            name,
            asset=key,
            additional_deps=[upstream],
            description=(
                f"Fails while a partition was built before a later change to a day of "
                f"{upstream.to_user_string()} in its lookback ({lookback.days} days): the partition "
                "is out of date; rematerialize it or the changed days."
            ),
            automation_condition=CHECK_AFTER_UPDATES,
        )
        for key in assets
    ]

    @dg.multi_asset_check(
        specs=specs,
        can_subset=True,
        name=f"{name}_{upstream.to_python_identifier()}",
        # Reads the instance's event log only.
        op_tags=k8s_op_tags(cpu="100m", cpu_limit="500m", memory="512Mi"),
    )
    def staleness(context: dg.AssetCheckExecutionContext) -> Iterable[dg.AssetCheckResult]:
        selected = context.selected_asset_check_keys
        inputs = latest_by_partition(context.instance, upstream)
        for key in assets:
            check_key = dg.AssetCheckKey(key, name)
            if check_key not in selected:
                continue
            built = latest_by_partition(context.instance, key)
            stale = stale_partitions(built, inputs, lookback)
            shown = sorted(stale)[:SHOWN]
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=name,
                passed=not stale,
                description=(
                    f"{len(stale)} partition(s) built before a change in their lookback"
                    if stale else "Every partition was built after the last change in its lookback"
                ),
                metadata={
                    "stale_partitions": len(stale),
                    "built_partitions": len(built),
                    "first_stale": dg.MetadataValue.md(
                        "\n".join(f"- {p} (input {stale[p]} changed after it)" for p in shown) or "none"
                    ),
                },
            )

    return staleness
