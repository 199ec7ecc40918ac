"""Triggers decide, from its upstream states, whether a task may run.

A trigger is ``fn(upstream_states: Dict[Edge, State]) -> bool``. Returning False fails the
task with ``TriggerFailed``; raising a signal ends it in that signal's state. Upstream
``Mapped`` states count through their children.

>>> from flowcore.engine.state import Success, Failed, Skipped
>>> all_successful({1: Success(), 2: Skipped()})
True
>>> any_failed({1: Success(), 2: Failed()})
True
>>> some_successful(at_least=0.5)({1: Success(), 2: Failed()})
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flowcore.engine import signals
from flowcore.engine.state import Mapped, State

__all__ = [
    "all_failed",
    "all_finished",
    "all_successful",
    "always_run",
    "any_failed",
    "any_successful",
    "manual_only",
    "not_all_skipped",
    "some_failed",
    "some_successful",
]

Trigger = Callable[[Mapping[Any, State]], bool]


def _states(upstream_states: Mapping[Any, State]) -> list[State]:
    """The distinct upstream states, with Mapped parents replaced by their children.

    As in Prefect 1 a state object counts once even when several edges carry it (a task
    that uses one upstream twice), and a Mapped parent with no children adds nothing.
    """
    found: dict[int, State] = {}
    for state in upstream_states.values():
        for one in state.map_states if isinstance(state, Mapped) else (state,):
            found.setdefault(id(one), one)
    return list(found.values())


def all_finished(upstream_states: Mapping[Any, State]) -> bool:
    """Runs when every upstream finished, whatever the outcome."""
    if not all(s.is_finished() for s in _states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_finished" but some of the upstream tasks were not finished.'
        )
    return True


always_run = all_finished


def manual_only(upstream_states: Mapping[Any, State]) -> bool:
    """Pauses the task until it is resumed (``context.resume``)."""
    from flowcore.utilities.context import context

    if context.get("resume"):
        return True
    raise signals.PAUSE('Trigger function is "manual_only"')


def all_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Runs when every upstream succeeded (Skipped, Cached and Mapped count). The default."""
    if not all(s.is_successful() for s in _states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_successful" but some of the upstream tasks failed.'
        )
    return True


def all_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Runs when every upstream failed."""
    if not all(s.is_failed() for s in _states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_failed" but some of the upstream tasks succeeded.'
        )
    return True


def any_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Runs when at least one upstream succeeded (or there are no upstream edges)."""
    if upstream_states and not any(s.is_successful() for s in _states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "any_successful" but none of the upstream tasks succeeded.'
        )
    return True


def any_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Runs when at least one upstream failed (or there are no upstream edges)."""
    if upstream_states and not any(s.is_failed() for s in _states(upstream_states)):
        raise signals.TRIGGERFAIL('Trigger was "any_failed" but none of the upstream tasks failed.')
    return True


def _within(count: int, total: int, at_least: float | None, at_most: float | None) -> bool:
    def bound(value: float | None, default: int) -> float:
        if value is None:
            return default
        return value * total if value < 1 else value

    return bound(at_least, 0) <= count <= bound(at_most, total)


def some_failed(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """Runs when the number of failed upstreams is within the bounds.

    A bound below 1 is a fraction of the upstream count; otherwise a count. No upstream
    at all passes.
    """

    def trigger(upstream_states: Mapping[Any, State]) -> bool:
        if not upstream_states:
            return True
        states = _states(upstream_states)
        failed = sum(s.is_failed() for s in states)
        if not _within(failed, len(states), at_least, at_most):
            raise signals.TRIGGERFAIL('Trigger was "some_failed" but thresholds were not met.')
        return True

    return trigger


def some_successful(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """Runs when the number of successful upstreams is within the bounds.

    A bound below 1 is a fraction of the upstream count; otherwise a count. No upstream
    at all passes.
    """

    def trigger(upstream_states: Mapping[Any, State]) -> bool:
        if not upstream_states:
            return True
        states = _states(upstream_states)
        succeeded = sum(s.is_successful() for s in states)
        if not _within(succeeded, len(states), at_least, at_most):
            raise signals.TRIGGERFAIL('Trigger was "some_successful" but thresholds were not met.')
        return True

    return trigger


def not_all_skipped(upstream_states: Mapping[Any, State]) -> bool:
    """Runs when every upstream succeeded and not all of them skipped.

    With no upstream at all it skips (every upstream is vacuously skipped), as Prefect 1.
    """
    states = _states(upstream_states)
    if all(s.is_skipped() for s in states):
        raise signals.SKIP("All upstreams were skipped", result=None)
    if not all(s.is_successful() for s in states):
        raise signals.TRIGGERFAIL(
            'Trigger was "not_all_skipped" but some of the upstream tasks failed.'
        )
    return True
