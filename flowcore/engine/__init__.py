"""The engine: states, signals, results, runners, cache validators, serializers."""

from __future__ import annotations

from typing import Any

from flowcore.engine import cache_validators, signals, state

__all__ = ["FlowRunner", "TaskRunner", "cache_validators", "signals", "state"]


def __getattr__(name: str) -> Any:
    if name == "FlowRunner":
        from flowcore.engine.flow_runner import FlowRunner

        return FlowRunner
    if name == "TaskRunner":
        from flowcore.engine.task_runner import TaskRunner

        return TaskRunner
    raise AttributeError(f"module 'flowcore.engine' has no attribute {name!r}")
