"""Opening a run store database: the engine, SQLite's settings, migrations, errors.

:func:`open_engine` makes the SQLAlchemy engine and brings the schema to
:data:`~flowcore.runs.schema.HEAD`. :func:`write` runs a function on a connection in a
write transaction, and :func:`connection` lends a connection for a read's transactions;
with :func:`translate`, they are the one boundary where SQLAlchemy's and the drivers'
errors become :class:`~flowcore.runs.store.RunStoreError` naming ``runs.store``.

SQLite: every connection gets ``busy_timeout`` (30 s), ``journal_mode=WAL`` and
``synchronous=NORMAL``. The driver's own transaction handling is turned off and flowcore
emits ``BEGIN`` itself: ``BEGIN IMMEDIATE`` for writes, which takes the write lock up front
(a deferred transaction that reads, then writes, can fail with "database is locked"
without waiting when another process committed in between). A write that still meets a
locked database is retried a few times.

Migrations run in a write transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an
advisory lock), and the revision is read again inside it, so several processes opening a
new database at once create its tables once. A database already at HEAD is recognised
without importing Alembic; a revision this flowcore does not know means a newer flowcore
wrote the database, and is an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from flowcore.runs.schema import HEAD, REVISIONS, VERSION_TABLE
from flowcore.runs.sql import SQLITE_WAIT, SQLITE_WRITING, error_detail, is_locked, retry_locked
from flowcore.runs.store import SETTING, RunStoreError

__all__ = ["connection", "migrate", "open_engine", "write"]

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
_ADVISORY_LOCK = 0x666C6F77  # "flow": serialises flowcore migrations on a PostgreSQL server


def open_engine(url: str, display: str) -> Engine:
    """The engine for ``url``, its schema migrated to HEAD."""
    with translate(display):
        try:
            engine = sa.create_engine(url, **_engine_options(url))
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
            hint = ""
            if url.startswith("postgres"):
                hint = (
                    " (flowcore talks to PostgreSQL through psycopg 3: a postgresql+psycopg://"
                    " URL, and pip install 'flowcore[postgres]')"
                )
            raise RunStoreError(
                f"{SETTING} is {display!r}, which SQLAlchemy cannot open: {error}{hint}"
            ) from error
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        try:
            migrate(engine, display)
        except BaseException:
            engine.dispose()
            raise
    return engine


@contextmanager
def connection(engine: Engine, display: str) -> Iterator[Connection]:
    """A connection of ``engine`` for one read (its transactions are the reader's), its
    errors translated (:func:`translate`); returned to the pool at the end."""
    with translate(display), engine.connect() as conn:
        yield conn


def write(engine: Engine, display: str, change: Callable[[Connection], T]) -> T:
    """``change(connection)`` in a write transaction, retried while SQLite is locked."""

    def attempt() -> T:
        with translate(display), _writing(engine) as conn:
            return change(conn)

    return retry_locked(attempt, _is_locked)


def migrate(engine: Engine, display: str) -> None:
    """Bring the database to HEAD (creating it when empty)."""
    with engine.connect() as conn, conn.begin():
        current = _revision(conn, display)
    if current == HEAD:
        return
    with _writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        if _revision(conn, display) != HEAD:
            _upgrade(conn)


@contextmanager
def translate(display: str) -> Iterator[None]:
    """SQLAlchemy's and the driver's errors, as RunStoreError naming the store."""
    try:
        yield
    except exc.SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        raise RunStoreError(f"run store {display} ({SETTING}): {error_detail(cause)}") from error


# -- helpers -----------------------------------------------------------------------------


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # flowcore emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        for pragma in (SQLITE_WAIT, *SQLITE_WRITING):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writing = conn.get_execution_options().get("flowcore_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.execution_options(flowcore_write=True)
        with conn.begin():
            yield conn


def _revision(conn: Connection, display: str) -> str | None:
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    current = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    if current is not None and current not in REVISIONS:
        raise RunStoreError(
            f"the run store {display} was written by a newer flowcore (schema revision "
            f"{current!r}; this flowcore knows up to {HEAD!r}): upgrade flowcore, or set "
            f"{SETTING} to another database"
        )
    return None if current is None else str(current)


# Alembic's ``op`` and ``context`` are module-level proxies: two migrations at once in one
# process (two new stores opened by two writers) would share them
_ALEMBIC_LOCK = threading.Lock()


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    alembic_config.attributes["connection"] = conn
    with _ALEMBIC_LOCK:
        command.upgrade(alembic_config, HEAD)


def _is_locked(error: Exception) -> bool:
    """(A write's error, translated.) SQLite said the file was locked."""
    cause = error.__cause__
    return (
        isinstance(error, RunStoreError)
        and isinstance(cause, exc.OperationalError)
        and is_locked(cause)
    )
