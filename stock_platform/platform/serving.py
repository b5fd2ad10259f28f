"""The serving database (PostgreSQL) for every domain that publishes to it: where it is, its
versioned schema, and publishing a window of rows atomically.

- Where: `SERVING_DATABASE_URL` (any PostgreSQL); else locally the embedded server of the data dir
  (platform/instance.py), database `serving`, started on demand and left running. The URL holds a
  password: it is read from the environment when a step connects, never kept in definitions or
  run config, and never part of an error message.
- Schema: Alembic migrations (versioned DDL) that the serving domain keeps in its folder; every
  publishing step applies the pending ones first (`migrate`).
- Publishing: one transaction per run: the window's rows deleted, the new rows copied in (COPY),
  then the domain's follow-up statements (e.g. a latest-row table). A reader sees the window all
  old or all new, and a killed publish leaves the old rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pyarrow as pa
from psycopg import sql

from stock_platform.platform.failpoints import failpoint
from stock_platform.platform.settings import platform_settings
from stock_platform.platform.warehouse import WarehouseTable

DATABASE = "serving"
# The role that owns the serving tables (created by the migrations); publishing writes as it.
WRITER_ROLE = "serving_writer"
ARROW_TYPES = {"DATE": pa.date32(), "STRING": pa.string(), "INT64": pa.int64(), "FLOAT64": pa.float64(),
               "BOOL": pa.bool_(), "TIMESTAMP": pa.timestamp("us", tz="UTC")}


class ServingDatabaseError(RuntimeError):
    pass


def database_url() -> str:
    """SERVING_DATABASE_URL, or the embedded server's `serving` database (started if need be)."""
    settings = platform_settings()
    if settings.serving_database_url is not None:
        return settings.serving_database_url.get_secret_value()
    from stock_platform.platform.instance import ensure_database

    return ensure_database(settings, DATABASE)


def describe(url: str) -> str:
    """host:port/dbname of a URL, for messages: never its password."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def connect_url(url: str) -> psycopg.Connection:
    """A connection; an error names the server and libpq's reason, with the password blanked."""
    try:
        password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        # libpq's message quotes the faulty part of the string: say nothing of it.
        raise ServingDatabaseError("SERVING_DATABASE_URL is not a valid PostgreSQL URL") from None
    try:
        return psycopg.connect(url)
    except psycopg.Error as exc:
        reason = str(exc).replace(str(password), "***") if password else str(exc)
        raise ServingDatabaseError(f"cannot connect to the serving database {describe(url)}: {reason}") from None


class ServingDatabaseResource(dg.ConfigurableResource):
    """The serving database. Holds no setting itself: the URL (a secret) is read from the
    environment when a step connects (gcp: resources/gcp.py connects to Cloud SQL instead)."""

    def connect(self) -> psycopg.Connection:
        return connect_url(database_url())


def migrate(connect: Callable[[], psycopg.Connection], script_location: Path) -> str:
    """Apply the pending Alembic migrations of `script_location`; returns the schema's revision."""
    import sqlalchemy
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=connect, poolclass=sqlalchemy.NullPool)
    config = Config()
    config.set_main_option("script_location", str(script_location))
    try:
        with engine.begin() as connection:
            # Two runs starting at once migrate one after the other (the lock ends with the transaction).
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('stock_platform.serving.migrate'))")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            return MigrationContext.configure(connection).get_current_revision() or ""
    finally:
        engine.dispose()


def arrow_schema(table: WarehouseTable) -> pa.Schema:
    return pa.schema([(column.name, ARROW_TYPES[column.bigquery_type]) for column in table.columns])


@contextmanager
def writer_transaction(conn: psycopg.Connection, *tables: str) -> Iterator[psycopg.Connection]:
    """A transaction as the writer role, holding the write lock of `tables` (schema.name): other
    publishers of them wait; readers do not."""
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(WRITER_ROLE)))
        for name in tables:
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(_identifier(name)))
        yield conn


def replace_window(
    conn: psycopg.Connection, target: str, date_column: str, first: dt.date, last: dt.date, rows: pa.Table
) -> int:
    """Inside a transaction: delete the rows of `target` with date_column in [first, last], then
    COPY `rows` (its columns by name) in. Returns the rows copied."""
    table = _identifier(target)
    column = sql.Identifier(date_column)
    conn.execute(sql.SQL("DELETE FROM {} WHERE {} BETWEEN %s AND %s").format(table, column, column), [first, last])
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in rows.column_names)
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)) as copy:
        for batch in rows.to_batches(max_chunksize=50_000):
            for row in zip(*(column.to_pylist() for column in batch.columns)):
                copy.write_row(row)
    return rows.num_rows


def publish(
    conn: psycopg.Connection,
    target: str,
    date_column: str,
    first: dt.date,
    last: dt.date,
    rows: pa.Table,
    then: Sequence[tuple[sql.SQL | sql.Composed, Any]] = (),
) -> int:
    """Replace the window [first, last] of `target` with `rows` and run the statements `then`
    (with their parameters), in one transaction as the writer role."""
    with writer_transaction(conn, target):
        copied = replace_window(conn, target, date_column, first, last, rows)
        for statement, parameters in then:
            conn.execute(statement, parameters)
        failpoint(f"serving.before_commit:{target}")  # crash tests kill the run here
    return copied


def _identifier(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))
