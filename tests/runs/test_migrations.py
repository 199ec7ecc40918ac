"""The run store's schema: Alembic revisions, upgrades on open, databases from the future."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from flowcore.runs import RunStore, RunStoreError
from flowcore.runs.database import MIGRATIONS
from flowcore.runs.events import LogLine
from flowcore.runs.schema import HEAD, REVISIONS, VERSION_TABLE, metadata
from tests.runs.conftest import at_revision, insert_old_run, revision_of


def test_the_revision_names_match_the_scripts() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert scripts.get_current_head() == HEAD
    assert [s.revision for s in reversed(list(scripts.walk_revisions()))] == list(REVISIONS)


def test_a_new_database_is_created_at_head_and_matches_the_tables(
    url: str, store: RunStore
) -> None:
    assert store.list_runs() == []
    assert revision_of(url) == HEAD
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": False}
        )
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_a_database_of_the_first_revision_is_upgraded_with_its_rows(
    url: str, make_store: Callable[..., RunStore]
) -> None:
    when = datetime.now(timezone.utc).replace(microsecond=0)
    with at_revision(url, REVISIONS[0]) as conn:
        insert_old_run(conn, url, when, parameters='{"n": "3"}')
        conn.execute(
            sa.text(
                "INSERT INTO log_lines (run_id, map_index, time, level, logger, message)"
                " VALUES ('old-run', -1, :t, 20, 'flowcore', 'one'),"
                " ('old-run', -1, :t, 20, 'flowcore', 'two')"
            ),
            {"t": when.replace(tzinfo=None).isoformat(" ") if url.startswith("sqlite") else when},
        )
    assert revision_of(url) == REVISIONS[0]

    store = make_store(max_log_lines=3)
    run = store.get_run("old-run")
    assert run is not None and (run.state, run.parameters, run.started) == (
        "Success", {"n": "3"}, when,
    )  # fmt: skip
    assert revision_of(url) == HEAD
    # the new log line counter starts from the lines the run already had
    for text in ("three", "four"):
        store.submit(LogLine("old-run", None, -1, when.timestamp(), 20, "flowcore", text))
    store.flush()
    assert [line.message for line in store.logs("old-run")] == [
        "one", "two", "three", "1 more log lines were dropped (runs.max_log_lines)",
    ]  # fmt: skip


def test_a_database_from_a_newer_flowcore_is_refused(
    url: str, make_store: Callable[..., RunStore]
) -> None:
    make_store().list_runs()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0099_future'"))
    engine.dispose()

    store = make_store()
    with pytest.raises(RunStoreError) as raised:
        store.list_runs()
    message = str(raised.value)
    assert "newer flowcore" in message and "0099_future" in message
    assert url.split("://", 1)[1].split("@")[-1] in message
    assert "upgrade flowcore" in message and "runs.store" in message
    store.submit(LogLine("x", None, -1, datetime.now(timezone.utc).timestamp(), 20, "l", "m"))
    with pytest.raises(RunStoreError, match="newer flowcore"):
        store.flush()
    assert revision_of(url) == "0099_future"
