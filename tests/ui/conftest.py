"""A run store filled by real flow runs, and the UI over it (Starlette's TestClient).

Each test module gets its own SQLite store (config ``runs.store`` while its fixtures
run flows); the app is the real one, reached through the ASGI test client at
``http://127.0.0.1`` (the UI answers loopback names only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from flowcore.configuration import config
from flowcore.runs import RunStore, open_store
from flowcore.ui import create_app
from tests.ui import flows


@dataclass
class Recorded:
    """The store and the ids of the runs the module's tests read."""

    store: RunStore
    demo: str  # ui demo: failed, XSS names and messages
    ok: list[str]  # ui ok: 5 successful runs, newest last
    path: Path


@contextmanager
def recording_into(path: Path | str) -> Iterator[RunStore]:
    """Flow runs in this process are recorded in ``path`` (a SQLite file or a URL: config
    ``runs.store``) until the block ends; yields that store."""
    before = config.get_path("runs.store")
    config.set_path("runs.store", str(path))
    try:
        store = open_store()
        assert store is not None
        yield store
    finally:
        config.set_path("runs.store", before)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    path = tmp_path_factory.mktemp("ui") / "runs.db"
    with recording_into(path) as store:
        demo = flows.record_demo().flow_run_id
        ok = [flows.record_ok().flow_run_id for _ in range(5)]
        store.flush()
    yield Recorded(store, demo, ok, path)


def client_for(store: RunStore, **options: Any) -> TestClient:
    """A test client of the UI over ``store`` (``options`` go to ``create_app``)."""
    return TestClient(
        create_app(store, **options), base_url="http://127.0.0.1", follow_redirects=False
    )


@pytest.fixture
def client(recorded: Recorded) -> Iterator[TestClient]:
    with client_for(recorded.store) as opened:
        yield opened


def eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "the condition") -> Any:
    """Call ``check`` until it returns something true (then return it), at most
    ``timeout`` seconds; a bounded wait for another process, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def csrf_of(client: TestClient, path: str = "/caches") -> str:
    """The CSRF token the UI's pages carry in their forms."""
    page = client.get(path).text
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]
