"""Shared fixtures: a fresh flowcore context per test and captured flowcore logs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from flowcore import configuration
from flowcore.utilities import context as _context


@pytest.fixture(autouse=True, scope="session")
def run_store_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Flow runs in the tests are recorded (the default), in a store of the session's own
    rather than ``~/.flowcore/flowcore.db``. The flowcore processes the tests start get a
    home directory of the session's own (by the environment), unless a test gives them
    one: nothing the tests run writes to the user's ``~/.flowcore``."""
    before = configuration.config.get_path("runs.store")
    configuration.config.set_path(
        "runs.store", str(tmp_path_factory.mktemp("runs") / "flowcore.db")
    )
    home_before = os.environ.get("FLOWCORE__HOME_DIR")
    os.environ["FLOWCORE__HOME_DIR"] = str(tmp_path_factory.mktemp("home"))
    try:
        yield
    finally:
        configuration.config.set_path("runs.store", before)
        if home_before is None:
            os.environ.pop("FLOWCORE__HOME_DIR", None)
        else:
            os.environ["FLOWCORE__HOME_DIR"] = home_before


@pytest.fixture(autouse=True)
def fresh_context() -> Iterator[None]:
    """Each test starts from a new base context scope (no caches or keys from others)."""
    token = _context._scope.set(None)
    try:
        yield
    finally:
        _context._scope.reset(token)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` wired to the ``flowcore`` logger (which does not propagate to root)."""
    logger = logging.getLogger("flowcore")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="flowcore")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


from tests.servers import gcs_bucket, gcs_server, s3_bucket, s3_server  # noqa: E402,F401
