"""States: what a task run or flow run is, was, or will be.

A State is a small value object: ``message``, ``_result`` (a ``Result``; ``result`` reads
its value), ``context`` (a dict) and ``cached_inputs`` (``{argument: Result}`` carried
by a task that will run again). The class says which phase the run is in; the ``is_*``
predicates are ``isinstance`` checks, so a subclass answers for its parents::

    State
    ├── Pending                          is_pending          waiting to run
    │   └── Scheduled(start_time)        is_scheduled        not before start_time
    │       ├── Paused                   (start_time None = until resumed)
    │       ├── Resume                   resume a Paused task
    │       └── Retrying(run_count)      is_retrying         failed; will run again
    ├── _MetaState(state)                is_meta_state       wraps another state
    │   ├── ClientFailed
    │   ├── Submitted                    is_submitted
    │   └── Queued(start_time)           is_queued, is_scheduled (not is_pending)
    ├── Running                          is_running
    │   └── Cancelling
    └── Finished                         is_finished
        ├── Looped(loop_count)           is_looped           one LOOP iteration done
        ├── Success                      is_successful
        │   ├── Cached                   is_cached           from a cache or a target
        │   ├── Mapped(map_states)       is_mapped           parent of mapped children
        │   └── Skipped                  is_skipped          counts as a success
        ├── Cancelled
        └── Failed                       is_failed
            ├── TimedOut
            ├── TriggerFailed
            └── ValidationFailed

A typical task run moves ``Pending -> Running -> Success``; a failure that may be retried
moves ``Running -> Failed -> Retrying``, and the next pass ``Retrying -> Running``. The
TaskRunner (``engine/task_runner.py``) owns every transition.

Two states are equal when they have the same class, equal ``result`` and equal public
attributes other than ``message`` and ``context`` (a meta state's wrapped ``state`` is
private, so it is not compared); the hash is identity, as in Prefect 1.

States read the run context in one place only, :func:`_context_defaults`, for the keys
Prefect 1 copies onto new states (``task_tags``, ``task_run_count``, ``task_loop_count``).

>>> s = Success("done", result=3)
>>> s.is_successful(), s.is_finished(), s.is_failed(), s.result
(True, True, False, 3)
>>> Skipped().is_successful(), TriggerFailed().is_failed()
(True, True)
>>> Pending().result is None and Pending()._result is NoResult
True
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pendulum

from flowcore.engine.result import NoResult, Result
from flowcore.utilities import context as _context

__all__ = [
    "Cached",
    "Cancelled",
    "Cancelling",
    "ClientFailed",
    "Crashed",
    "Failed",
    "Finished",
    "Looped",
    "Mapped",
    "Paused",
    "Pending",
    "Queued",
    "Resume",
    "Retrying",
    "Running",
    "Scheduled",
    "Skipped",
    "State",
    "Submitted",
    "Success",
    "TimedOut",
    "TriggerFailed",
    "ValidationFailed",
]

_NOT_COMPARED = frozenset({"context", "message", "flow_run_id"})


def _context_defaults(key: str) -> Any:
    """The one context read states make (task tags, run and loop counts)."""
    scope = _context._scope.get()
    return None if scope is None else scope.get(key)


def _as_pendulum(value: datetime | None) -> Any:
    if value is None or isinstance(value, pendulum.DateTime):
        return value
    return pendulum.instance(value)


class State:
    """Base class of all states.

    Args:
        message: a string, or an exception whose text explains the state.
        result: the value (wrapped in a ``Result``) or a ``Result``.
        context: extra information; ``tags`` are added from the running task:
            ``list(context.task_tags)``, so in the tags' own iteration order, with what
            that collection holds (a set has no duplicates), as in Prefect 1.
        cached_inputs: ``{argument name: Result}`` for a task that will run again.

    The state ``flow.run()`` returns also carries ``flow_run_id``, the run's id (as in the
    run store); other states have ``flow_run_id`` None. It does not count in ``==``.
    """

    color = "#696969"
    flow_run_id: str | None = None
    _result: Result

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        context: dict[str, Any] | None = None,
        cached_inputs: dict[str, Result] | None = None,
    ) -> None:
        self.message = message
        # what the ``result`` setter does, spelled out: a state is made several times per
        # task run, so its construction is on the engine's hot path
        if result is None:
            self._result = NoResult
        elif isinstance(result, Result):
            self._result = result
        else:
            self._result = Result(value=result)
        self.context = context = context or {}
        tags = _context_defaults("task_tags")
        if tags is not None and "tags" not in context:
            context["tags"] = list(tags)
        self.cached_inputs: dict[str, Result] = cached_inputs or {}

    def __sizeof__(self) -> int:
        """The instance plus its result value, as Prefect 1 counts it (``sys.getsizeof``)."""
        return super().__sizeof__() + sys.getsizeof(self.result, 0)

    @property
    def result(self) -> Any:
        return self._result.value

    @result.setter
    def result(self, value: Any) -> None:
        self._result = value if isinstance(value, Result) else Result(value=value)

    def __repr__(self) -> str:
        if self.message is not None:
            return f'<{type(self).__name__}: "{self.message}">'
        return f"<{type(self).__name__}>"

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        assert isinstance(other, State)
        if self.result != other.result:
            return False
        mine = {k: v for k, v in self.__dict__.items() if _compared(k)}
        theirs = {k: v for k, v in other.__dict__.items() if _compared(k)}
        return mine == theirs

    __hash__ = object.__hash__

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        value = self._result.value
        if isinstance(value, Exception):
            state["_result"] = _picklable_exception_result(self._result)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def load_result(self, result: Result | None = None) -> State:
        """Read the value from its location if only the location is known."""
        stored = self._result
        if stored.value is None and stored.location is not None:
            reader = result if result is not None else stored
            self._result = reader.read(stored.location)
        return self

    def load_cached_results(self, results: dict[str, Result] | None = None) -> State:
        """Read every cached input whose value is missing but whose location is known.

        ``results`` maps an input name to the Result that reads it (default: the cached
        Result itself); its ``location`` is used when the cached Result has none.
        """
        readers = results or {}
        loaded: dict[str, Result] = {}
        for key, stored in self.cached_inputs.items():
            reader = readers.get(key) or stored
            location = stored.location or reader.location
            if stored.value is None and location is not None:
                loaded[key] = reader.read(location)
            else:
                loaded[key] = stored
        self.cached_inputs = loaded
        return self

    @classmethod
    def children(cls, include_self: bool = False, names_only: bool = False) -> list[Any]:
        """Public subclasses, depth first (each class before its own subclasses); ``cls``
        last when ``include_self``. Classes whose names start with "_" are hidden, their
        subclasses are not.

        >>> Success.children(include_self=True, names_only=True)
        ['Cached', 'Mapped', 'Skipped', 'Success']
        """
        found = _public_subclasses(cls)
        if include_self:
            found.append(cls)
        return [c.__name__ for c in found] if names_only else found

    @classmethod
    def parents(cls, include_self: bool = False, names_only: bool = False) -> list[Any]:
        """Public ancestors, nearest first, up to ``State``; ``cls`` last when ``include_self``.

        >>> Cached.parents(include_self=True, names_only=True)
        ['Success', 'Finished', 'State', 'Cached']
        """
        found: list[type[State]] = [
            c for c in cls.__mro__[1:] if issubclass(c, State) and not c.__name__.startswith("_")
        ]
        if include_self:
            found.append(cls)
        return [c.__name__ for c in found] if names_only else found

    def is_pending(self) -> bool:
        return isinstance(self, Pending)

    def is_retrying(self) -> bool:
        return isinstance(self, Retrying)

    def is_running(self) -> bool:
        return isinstance(self, Running)

    def is_cancelling(self) -> bool:
        return isinstance(self, Cancelling)

    def is_finished(self) -> bool:
        return isinstance(self, Finished)

    def is_scheduled(self) -> bool:
        return isinstance(self, (Scheduled, Queued))

    def is_submitted(self) -> bool:
        return isinstance(self, Submitted)

    def is_queued(self) -> bool:
        return isinstance(self, Queued)

    def is_skipped(self) -> bool:
        return isinstance(self, Skipped)

    def is_successful(self) -> bool:
        return isinstance(self, Success)

    def is_failed(self) -> bool:
        return isinstance(self, Failed)

    def is_mapped(self) -> bool:
        return isinstance(self, Mapped)

    def is_cached(self) -> bool:
        return isinstance(self, Cached)

    def is_looped(self) -> bool:
        return isinstance(self, Looped)

    def is_meta_state(self) -> bool:
        return isinstance(self, _MetaState)


def _public_subclasses(cls: type[State]) -> list[type[State]]:
    found: list[type[State]] = []
    for sub in cls.__subclasses__():
        if not sub.__name__.startswith("_"):
            found.append(sub)
        found.extend(_public_subclasses(sub))
    return found


def _compared(key: str) -> bool:
    return not key.startswith("_") and key not in _NOT_COMPARED


def _picklable_exception_result(stored: Result) -> Result:
    """``stored``, or a copy whose exception can travel: one that cannot be pickled becomes
    a string (as Prefect 1 does); one that pickles but cannot be loaded again (its
    ``__init__`` needs other arguments than its ``args``) travels rebuilt without its
    ``__init__``, or as a stand-in of the same name and message (``engine._stand_in``), so
    the process that loads the state gets the task's failure, not the loading's error."""
    from flowcore.exceptions import FlowcoreSignal

    value = stored.value
    if isinstance(value, FlowcoreSignal):
        return stored
    import pickle

    import cloudpickle

    try:
        data = cloudpickle.dumps(value)
    except Exception as exc:
        replacement = stored.copy()
        replacement.value = (
            f"The following exception could not be pickled due to {exc!r}: {value!r}"
        )
        return replacement
    try:
        pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - any error of the exception's own __init__
        from flowcore.engine._stand_in import portable

        replacement = stored.copy()
        replacement.value = portable(value, f"it could not be loaded after pickling ({exc!r})")
        return replacement
    return stored


class Pending(State):
    """Waiting to run."""

    color = "#7ebdff"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        cached_inputs: dict[str, Result] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message=message, result=result, context=context, cached_inputs=cached_inputs
        )


class Scheduled(Pending):
    """Waiting until ``start_time`` (default now, UTC)."""

    color = "#ffab00"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        start_time: datetime | None = None,
        cached_inputs: dict[str, Result] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message=message, result=result, context=context, cached_inputs=cached_inputs
        )
        self.start_time = (
            _as_pendulum(start_time) if start_time is not None else pendulum.now("UTC")
        )
        run_count = _context_defaults("task_run_count")
        if run_count is not None:
            self.context["task_run_count"] = run_count


class Paused(Scheduled):
    """Waiting to be resumed (``start_time`` None) or until ``start_time``."""

    color = "#99a8e8"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        start_time: datetime | None = None,
        cached_inputs: dict[str, Result] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, result, start_time, cached_inputs, context)
        if start_time is None:
            self.start_time = None


class Resume(Scheduled):
    """Resume a Paused task: it runs at the next opportunity with ``context.resume``."""

    color = "#f58c0c"


class Retrying(Scheduled):
    """Failed, and will run again at ``start_time``; ``run_count`` attempts so far."""

    color = "#f66a0a"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        start_time: datetime | None = None,
        cached_inputs: dict[str, Result] | None = None,
        context: dict[str, Any] | None = None,
        run_count: int | None = None,
    ) -> None:
        super().__init__(message, result, start_time, cached_inputs, context)
        if run_count is None:
            run_count = _context_defaults("task_run_count") or 1
        self.run_count = run_count


class _MetaState(State):
    """A state that wraps another (``state``); nested wrappers are flattened."""

    color = "#696969"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        state: State | None = None,
        context: dict[str, Any] | None = None,
        cached_inputs: dict[str, Result] | None = None,
    ) -> None:
        super().__init__(
            message=message, result=result, context=context, cached_inputs=cached_inputs
        )
        self.state = state

    @property
    def state(self) -> State | None:
        return self._state

    @state.setter
    def state(self, value: State | None) -> None:
        while isinstance(value, _MetaState):
            value = value.state
        self._state = value


class ClientFailed(_MetaState):
    """A backend concept; accepted and unwrapped by the local engine."""

    color = "#eb0000"


class Submitted(_MetaState):
    """A backend concept; accepted and unwrapped by the local engine."""

    color = "#ffdf5d"


class Queued(_MetaState):
    """A backend concept: wraps a state until ``start_time``."""

    color = "#ffea7f"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        state: State | None = None,
        start_time: datetime | None = None,
        context: dict[str, Any] | None = None,
        cached_inputs: dict[str, Result] | None = None,
    ) -> None:
        super().__init__(message, result, state, context, cached_inputs)
        self.start_time = (
            _as_pendulum(start_time) if start_time is not None else pendulum.now("UTC")
        )


class Running(State):
    """The task body (or the flow) is running."""

    color = "#3d67ff"


class Cancelling(Running):
    """A backend concept: a cancellation was requested."""

    color = "#E8E8E8"


class Finished(State):
    """The run is over."""

    color = "#003ccb"


class Looped(Finished):
    """One iteration of a LOOP finished; ``loop_count`` iterations so far."""

    color = "#003ccb"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        loop_count: int | None = None,
        context: dict[str, Any] | None = None,
        cached_inputs: dict[str, Result] | None = None,
    ) -> None:
        super().__init__(
            message=message, result=result, context=context, cached_inputs=cached_inputs
        )
        if loop_count is None:
            loop_count = _context_defaults("task_loop_count") or 1
        self.loop_count = loop_count


class Success(Finished):
    """Finished without error."""

    color = "#28a745"


class Cached(Success):
    """A result served from an output cache or a target.

    Args:
        cached_parameters: the flow parameters when the value was cached.
        cached_result_expiration: when the cache entry expires (None = never).
        hashed_inputs: ``{argument: dask.base.tokenize(value)}``, or a function returning
            that dict, called on first access (a target hit defers hashing, and so the dask
            import, until something reads the hashes).
    """

    color = "#34d058"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        cached_inputs: dict[str, Result] | None = None,
        cached_parameters: dict[str, Any] | None = None,
        cached_result_expiration: datetime | None = None,
        context: dict[str, Any] | None = None,
        hashed_inputs: dict[str, str] | Callable[[], dict[str, str]] | None = None,
    ) -> None:
        super().__init__(
            message=message, result=result, context=context, cached_inputs=cached_inputs
        )
        self.cached_parameters = cached_parameters
        self.cached_result_expiration = _as_pendulum(cached_result_expiration)
        self.hashed_inputs = hashed_inputs

    @property
    def hashed_inputs(self) -> dict[str, str] | None:
        hashes = self.__dict__.get("_hashed_inputs")
        if callable(hashes):
            hashes = self.__dict__["_hashed_inputs"] = hashes()
        return hashes

    @hashed_inputs.setter
    def hashed_inputs(self, value: dict[str, str] | Callable[[], dict[str, str]] | None) -> None:
        self.__dict__["_hashed_inputs"] = value

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and self.hashed_inputs == other.hashed_inputs  # type: ignore[attr-defined]

    __hash__ = State.__hash__

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_hashed_inputs"] = self.hashed_inputs
        return state


class Mapped(Success):
    """The parent of mapped children: ``map_states`` holds their states."""

    color = "#003ccb"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        map_states: list[State] | None = None,
        context: dict[str, Any] | None = None,
        cached_inputs: dict[str, Result] | None = None,
        n_map_states: int | None = None,
    ) -> None:
        super().__init__(
            message=message, result=result, context=context, cached_inputs=cached_inputs
        )
        self.map_states: list[Any] = map_states or []
        self._n_map_states = n_map_states

    @property
    def n_map_states(self) -> int:
        """The number of children: the value given, else (also when 0) ``len(map_states)``."""
        return self._n_map_states or len(self.map_states)

    @n_map_states.setter
    def n_map_states(self, value: int | None) -> None:
        self._n_map_states = value

    def load_result(self, result: Result | None = None) -> State:
        """Load every child's result; the parent's result becomes the list of them."""
        for child in self.map_states:
            if child is not None:
                child.load_result(result)
        if self.map_states:
            self.result = [None if c is None else c.result for c in self.map_states]
        return self

    def iter_children(self) -> Iterator[State]:
        return iter(self.map_states)


class Skipped(Success):
    """Skipped (by SKIP, an upstream skip, or a non-matching branch); counts as success."""

    color = "#62757f"


class Cancelled(Finished):
    """A backend concept: the run was cancelled."""

    color = "#bdbdbd"


class Failed(Finished):
    """Finished with an error; ``result`` holds the exception."""

    color = "#eb0000"

    def __init__(
        self,
        message: str | Exception | None = None,
        result: Any = None,
        cached_inputs: dict[str, Result] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message=message, result=result, context=context, cached_inputs=cached_inputs
        )


class TimedOut(Failed):
    """The task ran past its ``timeout``."""

    color = "#ff4e33"


class TriggerFailed(Failed):
    """The task's trigger did not pass; the task body did not run."""

    color = "#ff5131"


class ValidationFailed(Failed):
    """A user validation failed (``VALIDATIONFAIL``)."""

    color = "#ff5131"


class Crashed(Failed):
    """The process or Dask worker running the task died while it ran (flowcore's own
    state, not in Prefect 1). Retried under ``max_retries`` like any failure; a flow run
    whose driving process died shows as Crashed in the run store."""

    color = "#8b0000"


def copy_state(state: State) -> State:
    """A shallow copy (used for per-child views of a mapped upstream)."""
    return copy.copy(state)
