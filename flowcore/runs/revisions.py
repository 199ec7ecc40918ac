"""The run store's schema revisions, by name, without SQLAlchemy or Alembic.

The Alembic revisions in ``flowcore/runs/migrations/versions`` create and change the
tables of :mod:`flowcore.runs.schema`. ``HEAD`` and ``REVISIONS`` name them so that a
reader can check a database's revision (in ``VERSION_TABLE``) without importing either;
a test keeps them equal to the scripts.
"""

from __future__ import annotations

__all__ = ["HEAD", "REVISIONS", "VERSION_TABLE"]

# Alembic revisions, oldest first; HEAD is the one this flowcore writes.
REVISIONS = (
    "0001_initial",
    "0002_listing_indexes_log_counts",
    "0003_run_journal",
    "0004_flow_structures",
)
HEAD = REVISIONS[-1]
VERSION_TABLE = "flowcore_schema_version"
