"""Run store fixtures: every contract test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flowcore.runs import RunStore
from flowcore.runs.events import FlowRunStarted, FlowRunState, TaskRunState
from tests.servers import own_postgresql_server, postgresql_server, postgresql_url  # noqa: F401

if TYPE_CHECKING:  # (imported where used: the writer's tests import this module without them)
    import sqlalchemy as sa
    from alembic.config import Config

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database: a SQLite file, or a database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return str(request.getfixturevalue("postgresql_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def make_store(url: str) -> Iterator[Callable[..., RunStore]]:
    """``make_store(**options)``: a RunStore on ``url``, closed after the test."""
    stores: list[RunStore] = []

    def make(**options: object) -> RunStore:
        store = RunStore(url, **options)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., RunStore]) -> RunStore:
    return make_store()


def at(seconds: float) -> datetime:
    """A time ``seconds`` after the tests' reference time (negative: before)."""
    return NOW + timedelta(seconds=seconds)


def started(
    run_id: str, flow: str = "etl", time: datetime | None = None, pid: int | None = None,
    host: str | None = None, **fields: object,
) -> FlowRunStarted:  # fmt: skip
    """A FlowRunStarted driven by this process (unless ``pid``/``host`` say otherwise)."""
    return FlowRunStarted(
        run_id=run_id, flow_name=flow, time=time or at(0),
        host=socket.gethostname() if host is None else host,
        pid=os.getpid() if pid is None else pid, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def flow_state(run_id: str, state: str, seconds: float, message: str | None = None) -> FlowRunState:
    return FlowRunState(run_id, state, message, at(seconds))


def task_state(
    run_id: str, slug: str, state: str, seconds: float, index: int = -1, **fields: object
) -> TaskRunState:
    return TaskRunState(run_id, slug, index, state, None, at(seconds).timestamp(), **fields)  # type: ignore[arg-type]


def alembic_config(connection: sa.Connection) -> Config:
    """An Alembic config that migrates the store's schema on ``connection``."""
    from alembic.config import Config

    from flowcore.runs.database import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def revision_of(url: str) -> str | None:
    """The schema revision of the database at ``url``."""
    import sqlalchemy as sa
    from alembic.migration import MigrationContext

    from flowcore.runs.revisions import VERSION_TABLE

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
    finally:
        engine.dispose()


@contextmanager
def at_revision(url: str, revision: str) -> Iterator[sa.Connection]:
    """A connection to the database at ``url``, migrated to ``revision`` only, in a
    transaction committed at the block's end."""
    import sqlalchemy as sa
    from alembic import command

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
            yield conn
    finally:
        engine.dispose()


def insert_old_run(
    conn: sa.Connection, url: str, when: datetime, parameters: str = "{}", structure: str = "{}"
) -> None:
    """A finished run ``old-run`` of flow ``etl`` started and ended at ``when``, as an
    older revision's ``flow_runs`` holds it (``conn``: at that revision)."""
    import sqlalchemy as sa

    conn.execute(
        sa.text(
            "INSERT INTO flow_runs (run_id, flow_name, state, message, started, ended,"
            " heartbeat, host, pid, parameters, structure) VALUES ('old-run', 'etl',"
            " 'Success', 'done', :t, :t, :t, 'h', 1, :parameters, :structure)"
        ),
        {
            # (on SQLite, the text sqlite3's default datetime adapter, deprecated since
            # Python 3.12, made of it)
            "t": when.replace(tzinfo=None).isoformat(" ") if url.startswith("sqlite") else when,
            "parameters": parameters,
            "structure": structure,
        },
    )
