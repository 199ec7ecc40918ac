"""Which store ``runs.store`` names, opening it, and what opening costs and checks."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

import flowcore.engine.state as state_module
from flowcore.configuration import config
from flowcore.runs import RunStore, RunStoreError, open_store, store_url
from flowcore.runs.events import LogLine
from flowcore.runs.states import FAILED_STATES, FINISHED_STATES, STATE_NAMES
from tests.runs.conftest import at, started
from tests.servers import free_port


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Path]:
    """``home_dir`` in a temp dir; ``runs.*`` restored afterwards."""
    saved = (config.home_dir, config.runs.copy())
    config.home_dir = str(tmp_path / "home")
    try:
        yield tmp_path
    finally:
        config.home_dir, config.runs = saved


def test_store_url_forms(settings: Path) -> None:
    home = settings / "home"
    assert store_url("sqlite") == f"sqlite:///{home / 'flowcore.db'}"
    assert home.is_dir()
    assert store_url("none") is None and store_url("None") is None and store_url("") is None
    assert store_url(str(settings / "sub" / "runs.db")) == f"sqlite:///{settings / 'sub/runs.db'}"
    assert (settings / "sub").is_dir()
    assert store_url("sqlite:////x/y.db") == "sqlite:////x/y.db"
    pg = "postgresql+psycopg://me:pw@db:5432/runs"
    assert store_url(pg) == pg
    config.runs.store = "none"
    assert store_url() is None and open_store() is None
    config.runs.store = None  # FLOWCORE__RUNS__STORE=None casts to None
    assert store_url() is None
    config.runs.store = "sqlite"
    assert store_url() == f"sqlite:///{home / 'flowcore.db'}"


def test_a_sqlite_url_s_directory_is_made_as_a_path_s(
    settings: Path, logs: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{settings / 'never' / 'made' / 'runs.db'}"
    assert store_url(url) == url
    assert (settings / "never" / "made").is_dir()
    store = RunStore(url)
    store.submit(started("r"))
    store.flush()
    assert [r.run_id for r in store.list_runs()] == ["r"]
    store.close()
    assert [r for r in logs.records if r.levelno >= logging.WARNING] == []
    driver_url = f"sqlite+pysqlite:///{settings / 'with' / 'driver' / 'runs.db'}"
    assert store_url(driver_url) == driver_url
    assert (settings / "with" / "driver").is_dir()


def test_a_relative_sqlite_url_to_a_missing_directory_says_so(
    settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///tmp/x.db`` (three slashes: a relative path) where ``tmp/`` is not in the
    working directory is an error naming the four slashes, and makes nothing; a relative
    path in a directory that exists is a store."""
    monkeypatch.chdir(settings)
    with pytest.raises(RunStoreError) as raised:
        store_url("sqlite:///tmp/runs/x.db")
    assert str(raised.value) == (
        "runs.store (FLOWCORE__RUNS__STORE) is 'sqlite:///tmp/runs/x.db', a path relative to "
        f"the working directory ({settings}), whose directory tmp/runs does not exist there: "
        "for the absolute path /tmp/runs/x.db write four slashes, 'sqlite:////tmp/runs/x.db', "
        "or make the directory"
    )
    assert not (settings / "tmp").exists()
    assert store_url("sqlite:///here.db") == "sqlite:///here.db"


def test_a_store_whose_directory_never_existed_says_so_and_warns_of_no_removal(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    """A RunStore made on a SQLite URL whose directory does not exist (``store_url`` would
    have made it): every flush says the directory does not exist; no WARNING says it was
    removed."""
    missing = tmp_path / "never" / "made"
    store = RunStore(f"sqlite:///{missing / 'runs.db'}")
    store.submit(started("r"))
    with pytest.raises(RunStoreError, match=f"its directory {missing} does not exist$"):
        store.flush()
    store.close()
    assert [r for r in logs.records if r.levelno == logging.WARNING] == []
    assert not missing.exists()


def test_a_file_that_is_not_a_database_is_named_with_what_to_do(tmp_path: Path) -> None:
    """Reading or writing a store file of garbage (or a damaged one) names the file and the
    fix, and records are not kept waiting for it to pass."""
    path = tmp_path / "runs.db"
    path.write_bytes(bytes(range(256)) * 32)
    told = (
        f"run store sqlite:///{path} (runs.store (FLOWCORE__RUNS__STORE)): {path} is not a "
        "SQLite database, or a damaged one (file is not a database): move it aside (the next "
        "run makes a new store there), or set runs.store (FLOWCORE__RUNS__STORE) to another path"
    )
    store = RunStore(f"sqlite:///{path}")
    with pytest.raises(RunStoreError) as raised:
        store.count_runs()
    assert str(raised.value) == told
    store.submit(started("r"))
    with pytest.raises(RunStoreError) as raised:
        store.flush()
    assert str(raised.value) == told
    assert store._feeder.broken is not None  # (not kept in memory to try again)
    store.close()


@pytest.mark.parametrize("spec", ["http://example.com/db", "s3://bucket/runs", "://nothing"])
def test_store_url_refuses_what_is_not_a_database(spec: str) -> None:
    with pytest.raises(RunStoreError, match=r"runs\.store \(FLOWCORE__RUNS__STORE\) is") as raised:
        store_url(spec)
    assert spec in str(raised.value) and "postgresql+psycopg://" in str(raised.value)


def test_store_url_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(RunStoreError, match="a directory"):
        store_url(str(tmp_path))


def test_open_store_gives_one_store_per_url_and_process(settings: Path) -> None:
    path = str(settings / "one.db")
    first = open_store(path)
    assert first is not None and open_store(path) is first
    assert open_store(f"sqlite:///{settings / 'one.db'}") is first
    assert open_store(str(settings / "two.db")) is not first
    first.close()


def test_an_unreachable_server_is_an_error_naming_the_setting() -> None:
    url = f"postgresql+psycopg://flowcore:secret@127.0.0.1:{free_port()}/nothing"
    store = RunStore(url)
    with pytest.raises(RunStoreError) as raised:
        store.list_runs()
    message = str(raised.value)
    assert "runs.store" in message and "FLOWCORE__RUNS__STORE" in message
    assert "127.0.0.1" in message and "secret" not in message
    store.submit(started("r"))
    with pytest.raises(RunStoreError, match="runs.store"):
        store.flush()
    with pytest.raises(RunStoreError, match="runs.store"):
        store.flush()  # every flush says so while the store cannot open
    with pytest.raises(RunStoreError, match="runs.store"):
        store.close()  # and so does the close that gives up on what it kept


def test_a_url_sqlalchemy_cannot_load_is_an_error_naming_the_setting() -> None:
    store = RunStore("postgresql+nosuchdriver://h/db")
    with pytest.raises(RunStoreError, match="runs.store .*postgresql\\+nosuchdriver") as raised:
        store.count_runs()
    assert "postgresql+psycopg://" in str(raised.value)


def test_a_file_in_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    store = RunStore(f"sqlite:///{tmp_path / 'missing' / 'runs.db'}")
    with pytest.raises(RunStoreError, match="runs.store"):
        store.list_runs()


def test_importing_the_store_imports_neither_sqlalchemy_nor_alembic() -> None:
    code = (
        "import sys, flowcore.runs\n"
        "store = flowcore.runs.RunStore('sqlite:////nonexistent/x.db')\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')]\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert not [m for m in imported if m.startswith(("sqlalchemy", "alembic"))]


def test_a_recorded_run_loads_no_reading_module_until_something_reads(tmp_path: Path) -> None:
    # the reading side (queries, records, sqlite3) is for the CLI, resume and the UI
    code = (
        "import sys\n"
        "from flowcore import Flow, task\n"
        "with Flow('f') as flow:\n"
        "    task(lambda x: x + 1)(1)\n"
        "state = flow.run()\n"
        "assert state.is_successful()\n"
        "reading = ('flowcore.runs.queries', 'flowcore.runs.records', 'sqlite3', 'socket')\n"
        "print(sorted(m for m in reading if m in sys.modules))\n"
        "from flowcore.runs import RunInfo, open_store\n"
        "from flowcore.runs.store import Transition\n"
        "open_store().flush()\n"
        "run = open_store().get_run(state.flow_run_id)\n"
        "print(isinstance(run, RunInfo), Transition.__module__)\n"
    )
    env = {**os.environ, "FLOWCORE__RUNS__STORE": str(tmp_path / "runs.db")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["[]", "True flowcore.runs.records"]


def test_the_state_table_matches_the_state_classes() -> None:
    classes = [
        cls
        for cls in vars(state_module).values()
        if isinstance(cls, type) and issubclass(cls, state_module.State)
    ]
    assert len(classes) > 15
    for cls in classes:
        if cls.__name__.startswith("_"):
            continue
        assert cls.__name__ in STATE_NAMES
        assert (cls.__name__ in FINISHED_STATES) == issubclass(cls, state_module.Finished)
        assert (cls.__name__ in FAILED_STATES) == issubclass(cls, state_module.Failed)


def test_opening_a_store_prunes_old_runs_once(settings: Path, tmp_path: Path) -> None:
    """The writer prunes once it has written a new run: a copy of a database with a run
    past ``runs.retention_days`` loses that run as soon as a store records a run in it."""
    from tests.runs.conftest import at, flow_state

    config.set_path("runs.retention_days", 0)  # (no limit: the old run is kept here)
    made = RunStore(f"sqlite:///{tmp_path / 'made.db'}")
    made.submit(started("old", time=at(-40 * 86_400)))
    made.submit(flow_state("old", "Success", -40 * 86_400 + 5))
    made.submit(started("new"))
    made.flush()
    assert made.count_runs() == 2
    made.close()
    config.set_path("runs.retention_days", 30)
    shutil.copy(tmp_path / "made.db", tmp_path / "copy.db")
    assert (
        not os.path.exists(tmp_path / "made.db-wal")
        or not (tmp_path / "made.db-wal").stat().st_size
    )

    copy = RunStore(f"sqlite:///{tmp_path / 'copy.db'}")
    copy.submit(started("newest"))
    copy.flush()
    assert sorted(r.run_id for r in copy.list_runs()) == ["new", "newest"]
    copy.close()


def test_at_most_max_runs_runs_are_kept_after_each_run(
    settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer prunes once a new run's row is written, so the new run counts: with
    runs.max_runs = 2, finished runs in a row leave the newest two. After the first new
    run it prunes at most every PRUNE_EVERY seconds (a process running many flows would
    otherwise prune once a batch, and a flush waits for that): within them, runs beyond
    the limit stay until the next prune. (A writer thread, so that PRUNE_EVERY can be
    changed here.)"""
    from flowcore.runs import writer
    from tests.runs.conftest import at, flow_state

    config.set_path("runs.max_runs", 2)
    for prune_every, name, kept in [
        (0.0, "every.db", [1, 2, 2, 2]),
        (3600.0, "once.db", [1, 2, 3, 4]),
    ]:
        monkeypatch.setattr(writer, "PRUNE_EVERY", prune_every)
        store = RunStore(f"sqlite:///{tmp_path / name}", writer="thread")
        counts = []
        for n in range(4):
            store.submit(started(f"run-{n}", time=at(n * 10)))
            store.submit(flow_state(f"run-{n}", "Success", n * 10 + 5))
            store.flush()
            counts.append(store.count_runs())
        assert counts == kept  # (with PRUNE_EVERY long: the first run pruned, the rest wait)
        if prune_every == 0.0:
            assert [r.run_id for r in store.list_runs()] == ["run-3", "run-2"]
        store.close()


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("max_runs", "abc", "a whole number >= 0 (0: no limit)"),
        ("max_runs", -1, "a whole number >= 0 (0: no limit)"),
        ("max_runs", 2.5, "a whole number >= 0 (0: no limit)"),
        ("retention_days", -5, "a number >= 0 (0: no limit)"),
        ("retention_days", "a month", "a number >= 0 (0: no limit)"),
    ],
)
def test_a_bad_retention_setting_is_an_error_and_deletes_nothing(
    settings: Path, logs: pytest.LogCaptureFixture, setting: str, value: object, expected: str
) -> None:
    """A bad ``runs.max_runs`` or ``runs.retention_days`` is one ERROR naming the setting,
    its value and what it may be; runs are recorded as ever (the writer and every flush
    keep working) and none is pruned, not even a run far past any retention."""
    from tests.runs.conftest import flow_state

    config.set_path("runs.retention_days", 0)
    store = RunStore(f"sqlite:///{settings / f'{setting}{value}.db'}")
    store.submit(started("old", time=at(-400 * 86_400)))
    store.submit(flow_state("old", "Success", -400 * 86_400 + 5))
    store.flush()
    store.close()
    config.set_path(f"runs.{setting}", value)
    store = RunStore(store.url)
    from flowcore.runs import feeder

    feeder._pruned.discard(store.url)  # (pruned once per process and URL: this is another)
    for n in range(3):
        store.submit(started(f"new-{n}", time=at(n)))
        store.submit(flow_state(f"new-{n}", "Success", n + 1))
        store.flush()
    assert [r.run_id for r in store.list_runs()] == ["new-2", "new-1", "new-0", "old"]
    variable = f"FLOWCORE__RUNS__{setting.upper()}"
    told = f"runs.{setting} ({variable}) is {value!r}: expected {expected}"
    errors = [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]
    assert errors == [f"{told}; old runs in {store.display} are not pruned"]
    with pytest.raises(RunStoreError) as raised:
        store.prune()
    assert str(raised.value) == told
    assert store.count_runs() == 4
    store.close()


def test_a_bad_max_log_lines_is_an_error_and_keeps_the_default(
    settings: Path, logs: pytest.LogCaptureFixture
) -> None:
    store = RunStore(f"sqlite:///{settings / 'lines.db'}")
    config.set_path("runs.max_log_lines", -5)
    assert store.kept_log_lines() == 10_000
    store.submit(started("r"))
    store.submit(LogLine("r", None, -1, at(1).timestamp(), logging.INFO, "flowcore", "kept"))
    store.flush()
    assert [line.message for line in store.logs("r")] == ["kept"]
    told = "runs.max_log_lines (FLOWCORE__RUNS__MAX_LOG_LINES) is -5: expected a whole number >= 0"
    errors = [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]
    assert errors == [f"{told}; keeping the default, 10000 lines per run"]
    store.close()


def test_a_sqlite_store_is_in_wal_mode(tmp_path: Path) -> None:
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.submit(started("w"))
    store.flush()
    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_stores_opening_a_new_database_at_once_create_it_once(url: str) -> None:
    """Each store migrates under the database's write lock (SQLite) or an advisory lock
    (PostgreSQL), and looks at the revision again once it holds it."""
    stores = [RunStore(url) for _ in range(4)]
    with ThreadPoolExecutor(len(stores)) as pool:
        counts = list(pool.map(lambda store: store.count_runs(), stores))
    assert counts == [0, 0, 0, 0]
    for store in stores:
        store.close()


def test_several_new_databases_migrated_at_once_in_one_process(tmp_path: Path) -> None:
    """Alembic's proxies are process-wide: migrations of different databases by different
    threads of one process take turns rather than trample each other."""
    stores = [RunStore(f"sqlite:///{tmp_path / f'db{i}.sqlite'}") for i in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            counts = list(pool.map(lambda s: s.count_runs(), stores))
        assert counts == [0] * 6
        for index, store in enumerate(stores):
            store.submit(started(f"run-{index}"))
            store.flush()
            assert store.count_runs() == 1
    finally:
        for store in stores:
            store.close()
