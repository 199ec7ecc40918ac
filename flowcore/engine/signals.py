"""Signals: exceptions that carry the state a task run should end in.

Raise one inside a task (``raise SKIP("nothing to do")``) to choose the task's state.
Every signal is a ``BaseException`` (see ``flowcore.exceptions``), so a user's
``except Exception`` does not swallow it. A signal's state keeps the signal itself as its
result unless ``result=`` is given; ``LOOP`` keeps its repr.

>>> s = FAIL("bad input")
>>> type(s.state).__name__, s.state.message, s.state.result is s
('Failed', 'bad input', True)
>>> signal_from_state(_state.Skipped()) is SKIP
True
"""

from __future__ import annotations

from typing import Any

from flowcore.engine import state as _state
from flowcore.exceptions import FlowcoreSignal, PrefectSignal

__all__ = [
    "ENDRUN",
    "FAIL",
    "LOOP",
    "PAUSE",
    "RETRY",
    "SKIP",
    "SUCCESS",
    "TRIGGERFAIL",
    "VALIDATIONFAIL",
    "PrefectSignal",
    "PrefectStateSignal",
    "signal_from_state",
]


class PrefectStateSignal(FlowcoreSignal):
    """A signal whose ``state`` is built from the constructor arguments."""

    _state_cls: type[_state.State] = _state.State

    def __init__(self, message: str | Exception | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(message)
        kwargs.setdefault("result", self)
        self.state = self._state_cls(message, *args, **kwargs)


class FAIL(PrefectStateSignal):
    """The task failed (``Failed``); retried if the task allows it."""

    _state_cls = _state.Failed


class TRIGGERFAIL(FAIL):
    """A trigger did not pass (``TriggerFailed``)."""

    _state_cls = _state.TriggerFailed


class VALIDATIONFAIL(FAIL):
    """A user validation failed (``ValidationFailed``)."""

    _state_cls = _state.ValidationFailed


class SUCCESS(PrefectStateSignal):
    """The task succeeded early (``Success``); pass ``result=`` to set the value."""

    _state_cls = _state.Success


class RETRY(PrefectStateSignal):
    """Run the task again (``Retrying``), regardless of ``max_retries``."""

    _state_cls = _state.Retrying


class SKIP(PrefectStateSignal):
    """Skip the task (``Skipped``); downstream tasks skip too by default."""

    _state_cls = _state.Skipped


class PAUSE(PrefectStateSignal):
    """Pause the task (``Paused``) until resumed or until ``start_time``."""

    _state_cls = _state.Paused


class LOOP(PrefectStateSignal):
    """Finish this iteration (``Looped``) and run the task again with ``task_loop_result``."""

    _state_cls = _state.Looped

    def __init__(self, message: str | Exception | None = None, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("result", repr(self))
        super().__init__(message, *args, **kwargs)


class ENDRUN(FlowcoreSignal):
    """Stop a runner's pipeline; ``state`` becomes the final state. Engine-internal."""

    def __init__(self, state: _state.State) -> None:
        super().__init__(state)
        self.state = state


_SIGNAL_FOR_STATE: dict[type[_state.State], type[PrefectStateSignal]] = {
    signal._state_cls: signal
    for signal in (FAIL, TRIGGERFAIL, VALIDATIONFAIL, SUCCESS, RETRY, SKIP, PAUSE, LOOP)
}


def signal_from_state(state: _state.State) -> type[PrefectStateSignal]:
    """The signal class whose state has exactly ``state``'s class.

    As in Prefect 1 the match is exact: ``Cached``, ``Mapped`` or ``TimedOut`` have no
    signal and raise ``ValueError``.

    >>> signal_from_state(_state.TriggerFailed()) is TRIGGERFAIL
    True
    """
    try:
        return _SIGNAL_FOR_STATE[type(state)]
    except KeyError:
        raise ValueError(f"No signal matches the provided state: {state}") from None
