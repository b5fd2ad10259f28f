"""Where Spark jobs write before the lake publishes: `_staging/<run id>-<random>/` in the lake.

A cleaning step moves the staged files into new version prefixes of its datasets and publishes
them (platform/lake.py). A run killed during its Spark write leaves its partial output here,
never visible to readers; `collect_abandoned_staging` removes it once that run has ended.
"""

from __future__ import annotations

import collections
import datetime as dt
import posixpath
import uuid
from dataclasses import dataclass

import dagster as dg
import pyarrow.parquet as pq

from stock_platform.platform.failpoints import failpoint
from stock_platform.platform.lake import Lake, Manifest, new_version, parquet_rows

STAGING = "_staging"


def new_staging(run_id: str) -> str:
    """A staging folder (relative to the lake root) for one Spark job of run `run_id`."""
    return f"{STAGING}/{run_id}-{uuid.uuid4().hex[:8]}"


def collect_abandoned_staging(store: Lake, instance: dg.DagsterInstance) -> list[str]:
    """Remove the staging folders of runs that have ended. Folders of runs in progress, or
    unknown to this instance, stay."""
    store.fs.invalidate_cache(store.uri(STAGING))
    try:
        entries = store.fs.ls(store.uri(STAGING), detail=False)
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        name = posixpath.basename(entry.rstrip("/"))
        run = instance.get_run_by_id(name[:36])  # a run id is 36 characters
        if run is not None and run.is_finished:
            store.remove_tree(f"{STAGING}/{name}")
            removed.append(name)
    return removed


@dataclass(frozen=True)
class CleanedDay:
    """What a cleaning published for one day."""

    status: str  # the raw partition's, e.g. "ok" or "market_closed"
    clean_rows: int
    rejected_rows: int
    reasons: collections.Counter[str]


def publish_staged(
    context: dg.AssetExecutionContext,
    store: Lake,
    staging: str,
    days: list[dt.date],
    raw: str,
    clean: str,
    rejected: str,
    reason_column: str,
) -> dict[dt.date, CleanedDay]:
    """Publish a Spark cleaning's staged output (`<staging>/{clean,rejected}/dt=YYYY-MM-DD/`) as
    new versions of the `clean` and `rejected` datasets, day by day, then remove the staging
    folder (and those of killed runs).

    First, every raw row must come out exactly once, clean or rejected (the raw manifest counts
    them): otherwise nothing is published and the step fails naming the days. Each day keeps its
    raw partition's status (e.g. market_closed). Returns each day's counts and rejection reasons."""
    name = context.asset_key.to_user_string()
    staged = {
        (day, folder): store.fs.glob(store.uri(f"{staging}/{folder}/dt={day.isoformat()}/*.parquet"))
        for day in days for folder in ("clean", "rejected")
    }
    counts = {key: parquet_rows(store, uris) for key, uris in staged.items()}
    raw_manifests = {day: store.published(raw, day) for day in days}
    unbalanced = [
        f"{day}: raw {raw_manifests[day].rows}, clean {counts[day, 'clean']} + rejected {counts[day, 'rejected']}"
        for day in days
        if counts[day, "clean"] + counts[day, "rejected"] != raw_manifests[day].rows
    ]
    if unbalanced:
        store.remove_tree(staging)
        raise dg.Failure(
            f"{name} published nothing: the clean and rejected rows do not add up to the raw rows "
            f"on {'; '.join(unbalanced)}"
        )
    # The state of every manifest this step replaces, read before it replaces any: a run that
    # overlaps this one and publishes first makes this one fail (PublishConflict) instead of
    # leaving one run's clean/ beside the other's rejected/.
    states = {(day, dataset): store.publish_state(dataset, day) for day in days for dataset in (clean, rejected)}
    published = {}
    for day in days:
        version = new_version()
        reasons: collections.Counter[str] = collections.Counter()
        for dataset, folder in ((clean, "clean"), (rejected, "rejected")):
            names = store.adopt(staged[day, folder], dataset, day, version)
            if folder == "rejected":
                for file in names:
                    uri = store.uri(f"{store.partition_dir(dataset, day)}/{file}")
                    with store.fs.open(uri, "rb") as handle:
                        reasons.update(pq.read_table(handle, columns=[reason_column]).column(0).to_pylist())
            # Earlier days are published, this one is adopted into its version but not visible.
            failpoint(f"{name}.before_publish:{folder}/{day}")
            store.publish(Manifest(dataset, day, version, names, counts[day, folder], raw_manifests[day].status),
                          expected=states[day, dataset])
        published[day] = CleanedDay(raw_manifests[day].status, counts[day, "clean"], counts[day, "rejected"], reasons)
    store.remove_tree(staging)
    for folder in collect_abandoned_staging(store, context.instance):
        context.log.info(f"Removed {STAGING}/{folder}, left behind by a run that was killed")
    return published
