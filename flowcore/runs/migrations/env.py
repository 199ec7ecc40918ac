"""Alembic's entry point: migrate the connection flowcore hands over in ``attributes``."""

from __future__ import annotations

from alembic import context

from flowcore.runs.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
