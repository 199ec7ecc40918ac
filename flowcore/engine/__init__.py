"""The engine: states, signals, results, runners, cache validators, serializers."""

from __future__ import annotations

import warnings
from typing import Any

from flowcore.engine import cache_validators, signals, state
from flowcore.utilities.submodules import import_submodule

__all__ = [
    "FlowRunner",
    "TaskRunner",
    "cache_validators",
    "get_default_executor_class",
    "get_default_flow_runner_class",
    "get_default_task_runner_class",
    "signals",
    "state",
]


def _default_class(key: str, fallback: str) -> Any:
    """The class named by ``config.engine.<key>.default_class`` (a path or the class itself).

    A path that does not import gives a ``UserWarning`` and the ``fallback`` class, as
    Prefect 1's ``get_default_*_class`` functions do. ``flow.run()`` is stricter: it raises
    ``ImportError`` for such a path, so a typo in the config does not go unnoticed.
    """
    from flowcore import configuration
    from flowcore.engine.flow_runner import import_object

    value = configuration.config.engine[key].default_class
    try:
        return import_object(value)
    except ImportError as exc:
        warnings.warn(
            f"Could not import {value}; using {fallback} instead ({exc}).",
            UserWarning,
            stacklevel=3,
        )
        return import_object(fallback)


def get_default_executor_class() -> type:
    """The executor class ``flow.run()`` uses when none is given (``engine.executor``)."""
    return _default_class("executor", "flowcore.executors.LocalExecutor")  # type: ignore[no-any-return]


def get_default_flow_runner_class() -> type:
    """The ``FlowRunner`` class ``flow.run()`` uses (``engine.flow_runner``)."""
    return _default_class("flow_runner", "flowcore.engine.flow_runner.FlowRunner")  # type: ignore[no-any-return]


def get_default_task_runner_class() -> type:
    """The ``TaskRunner`` class a ``FlowRunner`` uses by default (``engine.task_runner``)."""
    return _default_class("task_runner", "flowcore.engine.task_runner.TaskRunner")  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    if name == "FlowRunner":
        from flowcore.engine.flow_runner import FlowRunner

        return FlowRunner
    if name == "TaskRunner":
        from flowcore.engine.task_runner import TaskRunner

        return TaskRunner
    return import_submodule(__name__, name)  # (flowcore.engine.results, ...)
