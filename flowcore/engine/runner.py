"""What TaskRunner and FlowRunner share: calling state handlers around each pipeline step,
``ENDRUN`` plumbing, and the one place where unexpected exceptions become states.

A pipeline step takes a state (plus explicit arguments) and returns a state, or raises
``ENDRUN(state)`` to make that state final. A step decorated with
:func:`call_state_handlers` (or run through :meth:`Runner._step`) behaves the same whether
the pipeline calls it or a user's test does:

* the step returns a new object -> the state handlers see ``old -> new``;
* the step raises ``ENDRUN`` -> the handlers see ``old -> final``, then ``ENDRUN`` goes on;
* the step raises a state signal (``FAIL``, ``SKIP``, ``PAUSE``, ...) -> its state, as if
  returned;
* the step raises anything else -> ``Failed("Unexpected error: ...")``, as if returned.

Handlers run as ``fn(target, old, new)`` (the task's or flow's own, first) and then
``fn(runner, old, new)``; each may return a replacement state, or None to keep it. What they
settle on must be a ``State``: anything else raises ``AttributeError`` (Prefect 1 fails the
same way, one step later), which ends the run ``Failed``.

With ``context.raise_on_exception`` set (``utilities.debug.raise_on_exception``), signals
and errors propagate instead, for debugging.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from logging import ERROR
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from flowcore.engine import signals
from flowcore.engine.signals import ENDRUN
from flowcore.engine.state import Failed, Pending, State, _MetaState
from flowcore.utilities.logging import get_logger, log

__all__ = ["ENDRUN", "Runner", "call_state_handlers"]

_R = TypeVar("_R", bound="Runner")
_P = ParamSpec("_P")


def call_state_handlers(
    method: Callable[Concatenate[_R, State, _P], State],
) -> Callable[Concatenate[_R, State, _P], State]:
    """Make ``method(self, state, ...)`` a pipeline step with state-handler calls (the
    module docstring), so that calling it directly behaves as it does inside a run."""

    def step(self: _R, state: State, *args: _P.args, **kwargs: _P.kwargs) -> State:
        try:
            new_state = method(self, state, *args, **kwargs)
        except (ENDRUN, signals.PrefectStateSignal, Exception) as exc:
            new_state = self._step_raised(state, exc)
        if new_state is not state:
            new_state = self.handle_state_change(state, new_state)
        return new_state

    functools.update_wrapper(step, method)
    step.calls_state_handlers = True  # type: ignore[attr-defined]
    return cast("Callable[Concatenate[_R, State, _P], State]", step)  # ``state`` stays a keyword


def unwrap_state(state: State | None) -> State:
    """The state a run starts from: meta states (``Submitted``, ``Queued``) unwrapped,
    None -> ``Pending()``."""
    while isinstance(state, _MetaState):
        state = state.state
    return Pending() if state is None else state


class Runner:
    """Base class of the task and flow runners.

    Args:
        state_handlers: ``fn(runner, old_state, new_state) -> State | None`` callables,
            called after the runner target's own handlers.
        logger: where step-level messages go (default: ``flowcore.<class name>``).
    """

    def __init__(
        self,
        state_handlers: list[Callable[..., Any]] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if state_handlers is not None and not isinstance(state_handlers, (list, tuple)):
            raise TypeError("state_handlers must be a list of callables")
        self.state_handlers = list(state_handlers or [])
        self.logger = logger if logger is not None else get_logger(type(self).__name__)
        self.raise_on_exception = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def _initialize_run(
        self, state: State | None, context: dict[str, Any]
    ) -> tuple[State, dict[str, Any]]:
        """The state to start from (:func:`unwrap_state`) and ``context``; the subclasses
        also fill the context's keys."""
        return unwrap_state(state), context

    # typed loosely: FlowRunner's takes the flow run's other arguments too
    initialize_run: Callable[..., Any] = _initialize_run

    def call_runner_target_handlers(self, old_state: State, new_state: State) -> State:
        """The task's or flow's own handlers; overridden by the subclasses."""
        return new_state

    def handle_state_change(self, old_state: State, new_state: State) -> State:
        """Run the target's handlers, then the runner's; each may replace the state."""
        given = new_state
        try:
            new_state = self.call_runner_target_handlers(old_state, new_state)
            for handler in self.state_handlers:
                new_state = handler(self, old_state, new_state) or new_state
            if new_state is not given and not isinstance(new_state, State):
                raise AttributeError(
                    f"a state handler returned {new_state!r}, which is not a State: "
                    "state handlers must return a State or None"
                )
        except (ENDRUN, signals.PAUSE):
            raise
        except signals.PrefectStateSignal as exc:
            if self._debugging():
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
        *,
        log_when_raised: bool = True,
    ) -> State:
        """The one place where an exception becomes a state: ``state_class(message)``
        carrying ``exc``, after an ERROR line with its traceback (``log_message``, default
        ``message``). With ``raise_on_exception`` (debugging) ``exc`` is raised instead,
        after the line, as Prefect 1's runners log at each layer an error passes through
        (``log_when_raised=False``: before it, as its task's own error is raised).
        Call it from the ``except`` clause that caught ``exc``."""
        debugging = self._debugging()
        if debugging and not log_when_raised:
            raise exc
        log(self.logger, ERROR, log_message or message, sinks=True, exc_info=exc)
        if debugging:
            raise exc
        return state_class(message, result=exc)

    def _debugging(self) -> bool:
        """Whether signals and errors propagate (``raise_on_exception``)."""
        return self.raise_on_exception

    def _step_raised(self, state: State, exc: BaseException) -> State:
        """What a step that raised ``exc`` (given ``state``) comes to: the module docstring."""
        if isinstance(exc, ENDRUN):
            final = exc.state
            if final is not state:
                final = self.handle_state_change(state, final)
            raise ENDRUN(final) from None
        if isinstance(exc, signals.PrefectStateSignal):
            self.logger.info(f"{type(exc).__name__} signal raised: {exc!r}")
            if self._debugging():
                raise exc
            return exc.state
        assert isinstance(exc, Exception)
        return self.state_from_error(exc, f"Unexpected error: {exc!r}")

    def _step(self, step: Callable[..., State], state: State, *args: Any) -> State:
        """Run one pipeline step with state-handler calls (see the module docstring); a
        step decorated with :func:`call_state_handlers` calls them itself."""
        if getattr(step, "calls_state_handlers", False):
            return step(state, *args)
        try:
            new_state = step(state, *args)
        except (ENDRUN, signals.PrefectStateSignal, Exception) as exc:
            new_state = self._step_raised(state, exc)
        if new_state is not state:
            new_state = self.handle_state_change(state, new_state)
        return new_state
