"""Alembic revisions of the run store, oldest first (see ``flowcore.runs.schema.REVISIONS``)."""
