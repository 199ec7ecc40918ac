"""Test helpers for ``flowcore.config`` (Prefect 1's ``set_temporary_config``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flowcore import configuration

__all__ = ["set_temporary_config"]


@contextmanager
def set_temporary_config(temp_config: Mapping[str, Any]) -> Iterator[configuration.Config]:
    """Set dotted config keys (``{"flows.checkpointing": True}``) for the block.

    The live ``flowcore.config`` is changed in place and restored on exit, so runs started
    inside the block see the new values.
    """
    config = configuration.config
    saved = config.copy()
    try:
        for dotted, value in temp_config.items():
            config.set_path(dotted, value)
        yield config
    finally:
        config.clear()
        config.update(saved)
