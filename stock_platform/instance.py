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
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.pool import QueuePool

OPEN_DATABASES = 16  # the index and the most recently used runs


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, db.Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

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
        with self._db_lock:
            with self._engine(shard).connect() as conn:
                with conn.begin():
                    yield conn
            if shard != INDEX_SHARD_NAME:
                os.utime(self.path_for_shard(shard))  # wakes the UI's watcher of this run

    def _close_all(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_all()  # before the database files are deleted
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


def _no_fsync_per_commit(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
