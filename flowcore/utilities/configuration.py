"""Test helpers for ``flowcore.config`` (Prefect 1's ``set_temporary_config``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from flowcore import configuration
from flowcore.utilities.context import context

__all__ = ["set_temporary_config"]


@contextmanager
def set_temporary_config(temp_config: Mapping[str, Any]) -> Iterator[configuration.Config]:
    """Set dotted config keys (``{"flows.checkpointing": True}``) for the block.

    The live ``flowcore.config`` is changed in place and restored on exit (its sections
    keep their identity), and, as in Prefect 1, the block runs in a context scope whose
    ``config`` is the live config, so runs started inside the block see the new values.

    >>> from flowcore import config
    >>> with set_temporary_config({"flows.checkpointing": True, "new.key": 1}):
    ...     config.flows.checkpointing, config.new.key
    (True, 1)
    >>> config.flows.checkpointing, "new" in config
    (False, False)
    """
    config = configuration.config
    saved = config.copy()
    try:
        for dotted, value in temp_config.items():
            config.set_path(dotted, value)
        with context(config=config):
            yield config
    finally:
        _restore(config, saved)


def _restore(target: MutableMapping[str, Any], saved: Mapping[str, Any]) -> None:
    for key in [k for k in target if k not in saved]:
        del target[key]
    for key, value in saved.items():
        current = target.get(key)
        if isinstance(current, MutableMapping) and isinstance(value, Mapping):
            _restore(current, value)
        else:
            target[key] = value
