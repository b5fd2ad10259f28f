"""Keeping the platform's stores bounded, for every domain: runs and their event and compute logs
past an age, old lake versions, and lake partitions past their dataset's retention. Used by the
weekly maintenance job (defs/operations)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from stock_platform.platform.lake import Lake

# A run still running or queued is never deleted, whatever its age.
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def delete_runs_before(instance: dg.DagsterInstance, cutoff: dt.datetime, batch: int = 500) -> int:
    """Delete the finished runs last updated before `cutoff`, with their event logs (in the
    instance's storage) and their step logs (compute log manager). Returns how many."""
    deleted = 0
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, updated_before=cutoff), limit=batch
        )
        if not records:
            return deleted
        for record in records:
            run_id = record.dagster_run.run_id
            instance.compute_log_manager.delete_logs(prefix=[run_id])
            instance.delete_run(run_id)
            deleted += 1


@dataclass
class LakeCollection:
    partitions_checked: int = 0
    partitions_expired: int = 0


def collect_lake(
    store: Lake, now: dt.datetime, retention_days: Mapping[str, int], version_grace: dt.timedelta
) -> LakeCollection:
    """Every dataset of the lake: delete the partitions of a day older than its retention
    (`retention_days` by dataset, e.g. {"rejected/web_access_logs": 90}; none: kept), and in the
    others the versions older than the published one and than `version_grace`."""
    result = LakeCollection()
    today = now.date()
    for dataset in store.datasets():
        keep_days = retention_days.get(dataset)
        for day in store.partition_days(dataset):
            result.partitions_checked += 1
            if keep_days is not None and day < today - dt.timedelta(days=keep_days):
                store.remove_tree(store.partition_dir(dataset, day))
                result.partitions_expired += 1
            else:
                store.collect_versions(dataset, day, now - version_grace)
    return result
