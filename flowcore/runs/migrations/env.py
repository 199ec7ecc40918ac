"""Alembic's entry point: migrate the connection flowcore hands over in ``attributes``."""

from __future__ import annotations

from typing import Any

from alembic import context

from flowcore.runs.schema import VERSION_TABLE, metadata


def run_migrations(connection: Any) -> None:
    """Run the pending revisions on ``connection`` (inside flowcore's transaction)."""
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


# Alembic runs this file with its context set up; anything else that imports it (pytest's
# doctest collection does) finds no context and runs nothing.
if getattr(context, "config", None) is not None:
    run_migrations(context.config.attributes["connection"])
