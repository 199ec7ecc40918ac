"""Cache stores written by flowcore 0.1.0 (pickled records), which this version never
reads: noticed once per process and directory, and the 0.1.0 policy entries whose file
names would collide with today's layout removed."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from flowcore.engine.result import Result

__all__ = ["note_legacy_layout"]

_LEGACY_SEEN: set[str] = set()
_LEGACY_LOCK = threading.Lock()


def note_legacy_layout(result: Result, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Once per process and local directory: pickled records written by flowcore 0.1.0
    are never read; say so once, and remove 0.1.0 policy entries (``<key>`` beside
    ``<key>.record``) whose file names would collide with this layout's directories."""
    directory = getattr(result, "dir", None)
    if not isinstance(directory, str):
        return
    with _LEGACY_LOCK:
        if directory in _LEGACY_SEEN:
            return
        _LEGACY_SEEN.add(directory)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    records = [n for n in names if n.endswith(".record") and _is_pickle(os.path.join(directory, n))]
    indexes = [n for n in names if os.path.isfile(os.path.join(directory, n, "records.pkl"))]
    for name in records:
        for stale in (name, name[: -len(".record")]):
            path = os.path.join(directory, stale)
            if os.path.isfile(path):
                os.remove(path)
    if records or indexes:
        logger.info(
            f"Cache store {directory!r}: {len(records) + len(indexes)} cache entries written by "
            "flowcore 0.1.0 (pickled records) are not read by this version"
            + (f"; removed {len(records)} policy entries" if records else "")
            + (
                f"; the {len(indexes)} '*/records.pkl' directories can be deleted"
                if indexes
                else ""
            )
        )


def _is_pickle(path: str) -> bool:
    """Whether ``path`` is a regular file that starts like a pickle (0.1.0 wrote its records
    so); never loads it, nor opens anything else (opening a FIFO would wait for a writer)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(1) == b"\x80"
    except OSError:
        return False
