"""The data lake: the same layout on local disk and in GCS, with atomic partition replacement.

Layout: `<dataset>/dt=YYYY-MM-DD/...`, where each domain names its datasets (raw/<name>,
clean/<name>, rejected/<name>). An object store has no atomic rename, so a partition
is never written in place. Each write goes to a fresh version prefix and is published by replacing
one small object:

    clean/stock_prices/dt=2024-01-02/v=20240103T050000123456Z-1a2b3c4d/part-00000.zstd.parquet
    clean/stock_prices/dt=2024-01-02/_manifest.json   -> {"version": ..., "files": [...], ...}

Readers go through the manifest, so they see the previous version until the new one is complete,
and a killed writer leaves only an unreferenced version prefix behind (collected by a later
publish). Replacing the manifest is atomic: os.replace locally, a single-object upload in GCS.

A writer that publishes several manifests of one day (a cleaning's clean/ and rejected/) passes
the state it read before writing (`publish_state`) as `expected`: the manifest is replaced only if
nobody published it meanwhile (GCS: an `ifGenerationMatch` precondition; local disk: a lock
around the compare and the rename), else `PublishConflict`. Two overlapping runs therefore never
leave one run's clean/ beside the other's rejected/: the second to publish fails and is re-run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
import uuid
from dataclasses import dataclass, field
from typing import Any

import fsspec

MANIFEST = "_manifest.json"
LOCK = "_manifest.lock"


class PublishConflict(RuntimeError):
    """Another writer published the partition after this one read its state."""


def new_version() -> str:
    """A version id that sorts by creation time and is unique across concurrent writers."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{now}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Manifest:
    """What one published partition contains. `files` are relative to the partition folder."""

    dataset: str
    day: dt.date
    version: str
    files: list[str]
    rows: int
    status: str = "ok"  # "ok" or "market_closed"
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "dataset": self.dataset,
                "dt": self.day.isoformat(),
                "version": self.version,
                "files": self.files,
                "rows": self.rows,
                "status": self.status,
                "details": self.details,
                "published_at": dt.datetime.now(dt.UTC).isoformat(),
            },
            ensure_ascii=False,
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        doc = json.loads(text)
        return cls(
            dataset=doc["dataset"],
            day=dt.date.fromisoformat(doc["dt"]),
            version=doc["version"],
            files=list(doc["files"]),
            rows=int(doc["rows"]),
            status=doc.get("status", "ok"),
            details=doc.get("details", {}),
        )


class Lake:
    """A lake rooted at a local folder or a gs://bucket/prefix, accessed through fsspec."""

    def __init__(self, root: str, fs: fsspec.AbstractFileSystem | None = None):
        self.root = root.rstrip("/")
        self.fs = fs or fsspec.filesystem("gcs" if root.startswith("gs://") else "file")
        self.is_local = not root.startswith("gs://")

    # paths -------------------------------------------------------------------------------------
    def uri(self, relative: str) -> str:
        """Absolute path or gs:// URI, usable by Spark, DuckDB and BigQuery."""
        return f"{self.root}/{relative}" if relative else self.root

    @staticmethod
    def partition_dir(dataset: str, day: dt.date) -> str:
        return f"{dataset}/dt={day.isoformat()}"

    def version_dir(self, dataset: str, day: dt.date, version: str) -> str:
        return f"{self.partition_dir(dataset, day)}/v={version}"

    # bytes -------------------------------------------------------------------------------------
    def write_bytes(self, relative: str, data: bytes) -> None:
        path = self.uri(relative)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)  # no-op on GCS
        self.fs.pipe_file(path, data)

    def read_bytes(self, relative: str) -> bytes:
        return self.fs.cat_file(self.uri(relative))

    def _write_atomically(self, relative: str, data: bytes) -> None:
        path = self.uri(relative)
        if not self.is_local:
            self.fs.pipe_file(path, data)  # a single-object upload is atomic in GCS
            return
        os.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    # partitions --------------------------------------------------------------------------------
    def manifest(self, dataset: str, day: dt.date) -> Manifest | None:
        path = f"{self.partition_dir(dataset, day)}/{MANIFEST}"
        try:
            return Manifest.from_json(self.read_bytes(path))
        except FileNotFoundError:
            return None

    def published(self, dataset: str, day: dt.date) -> Manifest:
        """The manifest of a partition that must be published; an error naming it otherwise."""
        manifest = self.manifest(dataset, day)
        if manifest is None:
            raise FileNotFoundError(f"{self.uri(self.partition_dir(dataset, day))} is not published")
        return manifest

    def files(self, dataset: str, day: dt.date) -> list[str]:
        """URIs of the files of the published version of a partition ([] if none or empty)."""
        manifest = self.manifest(dataset, day)
        return [] if manifest is None else self.version_files(dataset, day, manifest)

    def version_files(self, dataset: str, day: dt.date, manifest: Manifest) -> list[str]:
        """URIs of the files of the version `manifest` (read earlier) describes: a reader that
        also uses its row count gets files and count of one version, whatever is published
        meanwhile."""
        base = self.partition_dir(dataset, day)
        return [self.uri(f"{base}/{name}") for name in manifest.files]

    def adopt(self, source_uris: list[str], dataset: str, day: dt.date, version: str) -> list[str]:
        """Move files written elsewhere (e.g. Spark's staging output) into a version prefix.

        Returns their names relative to the partition folder, for the manifest.
        """
        # A rename on local disk; a server-side copy + delete on GCS (the files are not visible
        # to readers until publish, so the move need not be atomic).
        self.fs.makedirs(self.uri(self.version_dir(dataset, day, version)), exist_ok=True)
        names = []
        for index, source in enumerate(sorted(source_uris)):
            name = f"v={version}/part-{index:05d}{_suffix(source)}"
            self.fs.mv(source, self.uri(f"{self.partition_dir(dataset, day)}/{name}"))
            names.append(name)
        return names

    def publish_state(self, dataset: str, day: dt.date) -> str:
        """A token of the partition's published state ("" when nothing is published), for
        `publish(..., expected=)`: the object's generation in GCS, the version locally."""
        path = self.uri(f"{self.partition_dir(dataset, day)}/{MANIFEST}")
        if self.is_local:
            manifest = self.manifest(dataset, day)
            return manifest.version if manifest else ""
        self.fs.invalidate_cache(path)
        try:
            return str(self.fs.info(path)["generation"])
        except FileNotFoundError:
            return ""

    def publish(self, manifest: Manifest, expected: str | None = None) -> None:
        """Make `manifest.version` the visible version of its partition, then collect garbage.
        With `expected` (from publish_state), only if the partition is still in that state."""
        base = self.partition_dir(manifest.dataset, manifest.day)
        previous = self.manifest(manifest.dataset, manifest.day)
        data = manifest.to_json().encode()
        if expected is None:
            self._write_atomically(f"{base}/{MANIFEST}", data)
        elif self.is_local:
            self._replace_locally_if(base, manifest, expected, data)
        else:
            self._upload_if_generation(base, manifest, expected, data)
        keep = {manifest.version} | ({previous.version} if previous else set())
        self._collect(base, keep)

    def _conflict(self, manifest: Manifest) -> PublishConflict:
        return PublishConflict(
            f"{self.uri(self.partition_dir(manifest.dataset, manifest.day))} was published by another "
            f"run while this one was writing it; nothing of this run is visible there. Re-run the partition."
        )

    def _replace_locally_if(self, base: str, manifest: Manifest, expected: str, data: bytes) -> None:
        import fcntl

        os.makedirs(self.uri(base), exist_ok=True)
        with open(self.uri(f"{base}/{LOCK}"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            current = self.manifest(manifest.dataset, manifest.day)
            if (current.version if current else "") != expected:
                raise self._conflict(manifest)
            self._write_atomically(f"{base}/{MANIFEST}", data)

    def _upload_if_generation(self, base: str, manifest: Manifest, expected: str, data: bytes) -> None:
        # gcsfs only offers "create if absent"; google-cloud-storage sends any generation
        # precondition (0: the object must not exist).
        from google.api_core.exceptions import PreconditionFailed
        from google.cloud import storage

        bucket, _, key = self.uri(f"{base}/{MANIFEST}").removeprefix("gs://").partition("/")
        blob = storage.Client().bucket(bucket).blob(key)
        try:
            blob.upload_from_string(data, content_type="application/json", if_generation_match=int(expected or 0))
        except PreconditionFailed:
            raise self._conflict(manifest) from None
        self.fs.invalidate_cache(self.uri(base))

    def datasets(self) -> list[str]:
        """The datasets in the lake, e.g. "raw/stock_prices" (every `<layer>/<name>` folder)."""
        found = []
        for layer in ("raw", "clean", "rejected"):
            self.fs.invalidate_cache(self.uri(layer))
            try:
                entries = self.fs.ls(self.uri(layer), detail=False)
            except FileNotFoundError:
                continue
            found += [f"{layer}/{posixpath.basename(e.rstrip('/'))}" for e in entries if self.fs.isdir(e)]
        return sorted(found)

    def partition_days(self, dataset: str) -> list[dt.date]:
        """The days that have a partition folder in `dataset`, published or not."""
        self.fs.invalidate_cache(self.uri(dataset))
        try:
            entries = self.fs.ls(self.uri(dataset), detail=False)
        except FileNotFoundError:
            return []
        names = [posixpath.basename(e.rstrip("/")) for e in entries]
        return sorted(dt.date.fromisoformat(n[3:]) for n in names if n.startswith("dt="))

    def collect_versions(self, dataset: str, day: dt.date, older_than: dt.datetime) -> None:
        """Delete the versions of a partition older than its published one and than `older_than`
        (a reader that read the previous manifest just before a publish may still be on it)."""
        manifest = self.manifest(dataset, day)
        if manifest is not None:
            cutoff = min(manifest.version, older_than.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ"))
            self._collect(self.partition_dir(dataset, day), {manifest.version, cutoff})

    def _collect(self, base: str, keep: set[str]) -> None:
        # Keep the new and the previous version (a reader may still be on it); delete versions
        # older than both. Newer unpublished versions may belong to a writer still running.
        oldest_kept = min(keep)
        # Other processes add versions: list the store, not this instance's listing cache.
        self.fs.invalidate_cache(self.uri(base))
        try:
            entries = self.fs.ls(self.uri(base), detail=False)
        except FileNotFoundError:
            return
        for entry in entries:
            name = posixpath.basename(entry.rstrip("/"))
            if name.startswith("v=") and name[2:] not in keep and name[2:] < oldest_kept:
                self.fs.rm(entry, recursive=True)

    def remove_tree(self, relative: str) -> None:
        path = self.uri(relative)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)


def _suffix(path: str) -> str:
    name = posixpath.basename(path)
    for suffix in (".zstd.parquet", ".parquet", ".json.gz"):
        if name.endswith(suffix):
            return suffix
    return ""


def parquet_rows(lake: Lake, uris: list[str]) -> int:
    """Row count of Parquet files from their footers (no data is read)."""
    import pyarrow.parquet as pq

    total = 0
    for uri in uris:
        with lake.fs.open(uri, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total
