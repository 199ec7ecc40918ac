"""State class names as the run store sorts them: finished, failed, resumable.

A run is resumable when it did not finish well: it failed (``Failed`` and its subclasses),
was cancelled (Ctrl-C), or has no finished state (its process died, or still runs).

The store records state *names* (events carry names, not States), so that reading it needs
no engine. Prefect 1's state classes are a fixed, public hierarchy; this table mirrors it
(a test checks it against :mod:`flowcore.engine.state`). A name the table does not know
(a user's own State subclass) counts as unfinished.

>>> is_finished("Mapped"), is_finished("Retrying"), is_failed("Crashed"), is_failed("Cancelled")
(True, False, True, False)
>>> is_resumable("Crashed"), is_resumable("Running"), is_resumable("Cancelled")
(True, True, True)
>>> is_resumable("Success"), is_resumable("Skipped")
(False, False)
"""

from __future__ import annotations

__all__ = [
    "FAILED_STATES",
    "FINISHED_STATES",
    "RESUMABLE_FINISHED_STATES",
    "STATE_NAMES",
    "canonical",
    "is_failed",
    "is_finished",
    "is_resumable",
]

FAILED_STATES = frozenset({"Failed", "TimedOut", "TriggerFailed", "ValidationFailed", "Crashed"})
FINISHED_STATES = FAILED_STATES | {
    "Finished", "Looped", "Success", "Cached", "Mapped", "Skipped", "Cancelled",
}  # fmt: skip
# finished, but not well: a run that ended so is worth resuming
RESUMABLE_FINISHED_STATES = FAILED_STATES | {"Cancelled"}
UNFINISHED_STATES = frozenset(
    {"State", "Pending", "Scheduled", "Paused", "Resume", "Retrying", "ClientFailed",
     "Submitted", "Queued", "Running", "Cancelling"}
)  # fmt: skip
STATE_NAMES = tuple(sorted(FINISHED_STATES | UNFINISHED_STATES))


def is_finished(state: str) -> bool:
    """Whether ``state`` names a ``Finished`` state class."""
    return state in FINISHED_STATES


def is_failed(state: str) -> bool:
    """Whether ``state`` names ``Failed`` or one of its subclasses."""
    return state in FAILED_STATES


def is_resumable(state: str) -> bool:
    """Whether a flow run in ``state`` is worth resuming: failed, cancelled, or not
    finished."""
    return state in RESUMABLE_FINISHED_STATES or not is_finished(state)


def canonical(state: str) -> str:
    """``state`` as the engine spells it, whatever its case (unknown names unchanged).

    >>> canonical("failed"), canonical("TIMEDOUT"), canonical("Custom")
    ('Failed', 'TimedOut', 'Custom')
    """
    lowered = state.lower()
    return next((name for name in STATE_NAMES if name.lower() == lowered), state)
