"""What TaskRunner and FlowRunner share: calling state handlers around each pipeline step,
``ENDRUN`` plumbing, and the one place where unexpected exceptions become states.

A pipeline step takes a state (plus explicit arguments) and returns a state, or raises
``ENDRUN(state)`` to make that state final. :meth:`Runner._step` runs one step:

* the step returns a new object -> the state handlers see ``old -> new``;
* the step raises ``ENDRUN`` -> the handlers see ``old -> final``, then ``ENDRUN`` goes on;
* the step raises a state signal (``FAIL``, ``SKIP``, ...) -> its state, as if returned;
* the step raises anything else -> ``Failed("Unexpected error: ...")``, as if returned.

With ``context.raise_on_exception`` set (``utilities.debug.raise_on_exception``), signals
and errors propagate instead, for debugging.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flowcore.engine import signals
from flowcore.engine.signals import ENDRUN
from flowcore.engine.state import Failed, State

__all__ = ["ENDRUN", "Runner"]


class Runner:
    """Base class of the task and flow runners.

    Args:
        state_handlers: ``fn(runner, old_state, new_state) -> State | None`` callables,
            called after the runner target's own handlers.
        logger: where step-level messages go.
    """

    def __init__(self, state_handlers: list[Callable[..., Any]] | None, logger: logging.Logger) -> None:
        if state_handlers is not None and not isinstance(state_handlers, (list, tuple)):
            raise TypeError("state_handlers must be a list of callables")
        self.state_handlers = list(state_handlers or [])
        self.logger = logger
        self.raise_on_exception = False

    def call_runner_target_handlers(self, old_state: State, new_state: State) -> State:
        """The task's or flow's own handlers; overridden by the subclasses."""
        return new_state

    def handle_state_change(self, old_state: State, new_state: State) -> State:
        """Run the target's handlers, then the runner's; each may replace the state."""
        try:
            new_state = self.call_runner_target_handlers(old_state, new_state)
            for handler in self.state_handlers:
                new_state = handler(self, old_state, new_state) or new_state
        except (ENDRUN, signals.PAUSE):
            raise
        except signals.PrefectStateSignal as exc:
            if self.raise_on_exception:
                raise
            return exc.state
        except Exception as exc:
            message = f"Unexpected error while calling state handlers: {exc!r}"
            raise ENDRUN(self.state_from_error(exc, message)) from exc
        return new_state

    def state_from_error(
        self,
        exc: Exception,
        message: str,
        log_message: str | None = None,
        state_class: type[State] = Failed,
    ) -> State:
        """The one place where an exception becomes a state: ``state_class(message)``
        carrying ``exc``, after an ERROR line with its traceback (``log_message``, default
        ``message``). With ``raise_on_exception`` (debugging) ``exc`` is raised instead.
        Call it from the ``except`` clause that caught ``exc``."""
        if self.raise_on_exception:
            raise exc
        self.logger.error(log_message or message, exc_info=exc)
        return state_class(message, result=exc)

    def _step(self, step: Callable[..., State], state: State, *args: Any) -> State:
        """Run one pipeline step with state-handler calls (see the module docstring)."""
        try:
            new_state = step(state, *args)
        except ENDRUN as exc:
            final = exc.state
            if final is not state:
                final = self.handle_state_change(state, final)
            raise ENDRUN(final) from None
        except signals.PrefectStateSignal as exc:
            self.logger.info(f"{type(exc).__name__} signal raised: {exc!r}")
            if self.raise_on_exception:
                raise
            new_state = exc.state
        except Exception as exc:
            new_state = self.state_from_error(exc, f"Unexpected error: {exc!r}")
        if new_state is not state:
            new_state = self.handle_state_change(state, new_state)
        return new_state
