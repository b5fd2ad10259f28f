"""Alembic's entry point for the serving schema: it migrates on the connection that
platform/serving.py:migrate passes in (no URL here: the password never reaches Alembic's config)."""

from alembic import context

connection = context.config.attributes["connection"]
# The revision lives in public.serving_schema_version (it must exist before the first revision
# creates schema serving); that revision hands it to the writer role, like the tables.
context.configure(connection=connection, version_table="serving_schema_version")
with context.begin_transaction():
    context.run_migrations()
