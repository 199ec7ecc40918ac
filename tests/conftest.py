"""Shared fixtures: a fresh flowcore context per test and captured flowcore logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from flowcore.utilities import context as _context


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
