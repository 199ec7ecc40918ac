"""Debugging helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flowcore.utilities.context import context

__all__ = ["raise_on_exception"]


@contextmanager
def raise_on_exception() -> Iterator[None]:
    """Let exceptions raised inside tasks propagate instead of becoming ``Failed`` states.

    Use it to drop into a debugger at the failing line::

        with raise_on_exception():
            flow.run()
    """
    with context(raise_on_exception=True):
        yield
