"""Where Spark jobs write before the lake publishes: `_staging/<run id>-<random>/` in the lake.

A cleaning step moves the staged files into new version prefixes of its datasets and publishes
them (platform/lake.py). A run killed during its Spark write leaves its partial output here,
never visible to readers; `collect_abandoned_staging` removes it once that run has ended.
"""

from __future__ import annotations

import posixpath
import uuid

import dagster as dg

from stock_platform.platform.lake import Lake

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
