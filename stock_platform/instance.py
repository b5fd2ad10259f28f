"""Event log storage for the local Dagster instance: Dagster's SQLite storage, connections kept open.

Dagster's SqliteEventLogStorage builds a new engine, opens a connection and closes it again for
every write (SQLite also checkpoints its WAL on each last close). A single-run backfill records an
asset event per partition and asset (a one-year run: about 3,600, each written to the run's
database and to the index): with a fresh connection each, that bookkeeping took longer than the
Spark step (bench/pipeline.py measures it). Here each database keeps one connection, used under
the storage's own lock as before; SQLite's WAL keeps the other processes (the webserver, the
daemon, other runs) safe.

The UI follows a live run by watching the run's .db file for changes. With an open connection the
writes land in the -wal file, so after each write to a run's database its .db file is touched.

Batches: Dagster hands the storage a run's planned events and each step's per-partition
materializations as one batch when DAGSTER_EVENT_BATCH_SIZE is set; here a batch is one
transaction per database instead of one per event and database (a ten-year run plans 18,000
events), and each asset's row in the asset key table is written once per batch instead of once
per event.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import sqlalchemy as db
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, AssetKeyTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import serialize_value
from sqlalchemy.pool import QueuePool

OPEN_DATABASES = 16  # the index and the most recently used runs
EVENT_BATCH_SIZE = "10000"  # events per transaction; Dagster's batching is off unless it is set


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, db.Engine] = OrderedDict()
        self._batch = threading.local()  # .current: this thread's _Batch, while it writes one
        self._tables: set[str] = set()  # index tables known to exist
        self._asset_key_index_cols = False  # whether the asset key table has its index columns
        super().__init__(base_dir, inst_data=inst_data)
        # Read by the instance at each event, in every process that opens this storage.
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = db.create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                # Threads take turns under self._db_lock, so one connection may serve them all.
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            # WAL with synchronous=NORMAL: a commit no longer waits for fsync. Still safe against a
            # killed process (the WAL is intact); only a power loss may drop the last events.
            db.event.listen(engine, "connect", _no_fsync_per_commit)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._engines[shard] = engine
            if len(self._engines) > OPEN_DATABASES:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
        self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.Connection]:
        batch: _Batch | None = getattr(self._batch, "current", None)
        if batch is not None:  # inside store_event_batch, which holds the lock
            yield batch.connection(shard, self._engine)
            return
        with self._db_lock:
            with self._engine(shard).connect() as conn:
                with conn.begin():
                    yield conn
            self._wake_watchers(shard)

    def has_table(self, table_name: str) -> bool:
        """Dagster asks before every asset event's tag insert, each time through a new engine and
        connection (16 s of a ten-year run). A table, once there, stays until a wipe."""
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    def _has_asset_key_index_cols_on_connection(self, conn: db.Connection) -> bool:
        """Dagster reads the asset key table's columns before every asset event (9 s of a ten-year
        run). A column, once there, stays."""
        if not self._asset_key_index_cols:
            self._asset_key_index_cols = super()._has_asset_key_index_cols_on_connection(conn)
        return self._asset_key_index_cols

    def store_event_batch(self, events: Sequence) -> None:
        """Dagster's per-event writes, each database in one transaction for the whole batch.

        On an error nothing is committed, and the instance falls back to writing the events one
        by one."""
        with self._db_lock:
            with _Batch() as batch:
                self._batch.current = batch
                try:
                    for event in events:
                        self.store_event(event)
                    self._store_latest_asset_entries(batch.asset_events)
                finally:
                    self._batch.current = None
        for shard in batch.connections:
            self._wake_watchers(shard)

    def _wake_watchers(self, shard: str) -> None:
        """Touch a run's .db file after a write: the UI's watcher of that run looks at it."""
        if shard != INDEX_SHARD_NAME:
            os.utime(self.path_for_shard(shard))

    def _store_asset_event(self, conn: db.Connection, event, event_id: int) -> None:
        """Inside a batch, the asset key table's row is written once per asset when the batch
        ends (see _store_latest_asset_entries); alone, as Dagster writes it."""
        batch: _Batch | None = getattr(self._batch, "current", None)
        if batch is None:
            super()._store_asset_event(conn, event, event_id)
        elif event.dagster_event and event.dagster_event.asset_key:
            batch.asset_events.append((event, event_id))

    def _store_latest_asset_entries(self, asset_events: list) -> None:
        """The asset key table's rows after a batch, as Dagster's write per event leaves them.

        Dagster updates an asset's row at each of its events, and each materialization's update
        serializes that event a second time (a ten-year run's steps record 2,607 per asset). Each
        column ends up holding the value of the last event that sets it, so the events are read
        from the last one back, and a materialization sets them all."""
        by_key: dict[str, list] = {}
        for event, event_id in asset_events:
            by_key.setdefault(event.dagster_event.asset_key.to_string(), []).append((event, event_id))
        with self.index_connection() as conn:
            index_cols = self._has_asset_key_index_cols_on_connection(conn)
            columns = {"last_materialization", "last_run_id"} | (
                {"last_materialization_timestamp"} if index_cols else set())
            for key, events in by_key.items():
                values: dict = {}
                for event, event_id in reversed(events):
                    for column, value in self._get_asset_entry_values(event, event_id, index_cols).items():
                        values.setdefault(column, value)
                    if values.keys() >= columns:
                        break
                if not values:
                    continue
                try:  # as Dagster does it: insert, else update
                    conn.execute(AssetKeyTable.insert().values(asset_key=key, **values))
                except db.exc.IntegrityError:
                    conn.execute(AssetKeyTable.update().values(**values).where(AssetKeyTable.c.asset_key == key))

    def _store_asset_check_evaluation_planned(self, event, event_id: int | None) -> None:
        """Dagster's own rows (one per planned partition), with the event serialized once instead
        of once per row, inserted as an executemany instead of one multi-row VALUES statement that
        SQLAlchemy compiles: a one-year run plans 260 partitions of each of its 39 checks."""
        planned = event.get_dagster_event().event_specific_data
        subset = planned.partitions_subset
        shared = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert(),
                [{**shared, "partition": key} for key in (subset.get_partition_keys() if subset else [None])],
            )

    def _close_all(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_all()  # before the database files are deleted
        self._tables.clear()
        self._asset_key_index_cols = False
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


class _Batch(ExitStack):
    """One open transaction per database, committed together when the batch ends."""

    def __init__(self):
        super().__init__()
        self.connections: dict[str, db.Connection] = {}
        self.asset_events: list = []  # (event, event id): their asset key rows are written last

    def connection(self, shard: str, engine_for) -> db.Connection:
        if shard not in self.connections:
            conn = self.enter_context(engine_for(shard).connect())
            self.enter_context(conn.begin())
            self.connections[shard] = conn
        return self.connections[shard]


def _no_fsync_per_commit(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
