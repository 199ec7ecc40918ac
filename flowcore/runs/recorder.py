"""The one small interface through which the runners report a flow run to the run store.

``run_flow`` makes one :class:`RunRecorder` per flow run and puts it in the run's context
(``context.run_recorder``). Three kinds of callers report through it:

* ``run_flow`` (the driver): :meth:`RunRecorder.started`, :meth:`RunRecorder.flow_state`
  and :meth:`RunRecorder.finished`;
* a TaskRunner running in the driver's process (LocalExecutor, threads): every state
  change of its task run, as it happens (:meth:`RunRecorder.task_state`);
* the driver again, for the states it collects from workers in other processes
  (:meth:`RunRecorder.collected`): a recorder sent to a Dask worker or a process pool
  arrives there detached and reports nothing, so workers never open connections of their
  own; what they did reaches the store through the driver, when it collects their states
  (final states only: how long a task ran in another process is not known).

A state is reported once: the recorder remembers the last state object it reported for
each task run (``(slug, map_index)``) and skips a collected state it has already seen.

``Running`` costs nothing for a quick task run: the recorder notes the time and sends it
with the run's next state (``TaskRunState.started``), so a task run is one event, not two.
A task run still ``Running`` a quarter of a second later is announced on its own by the
store's writer thread (:meth:`RunRecorder.overdue`, a ticker of the store), so a long task
shows as running within a batch interval, and a crash leaves it recorded as started.

Log lines: while a run is recorded, lines that flowcore's own log handler writes in the
driver's process for this run (``context.flow_run_id``) are sent to the store as well
(:func:`flowcore.utilities.logging.add_line_sink`).

A recorder may also feed a live progress display (:mod:`flowcore.runs.progress`), with or
without a store. Everything here is cheap: an event is built and queued; the store writes
on its own thread.
"""

from __future__ import annotations

import os
import socket
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from flowcore.engine.state import Mapped, Running, State, Success
from flowcore.runs.events import FlowRunStarted, FlowRunState, LogLine, TaskRunState
from flowcore.utilities import context as _context
from flowcore.utilities.logging import add_line_sink, remove_line_sink

if TYPE_CHECKING:
    from flowcore.runs.progress import RunProgress
    from flowcore.runs.store import RunStore

__all__ = ["RunRecorder"]

_PARAMETER_REPR_LIMIT = 200
_ANNOUNCE_RUNNING_AFTER = 0.25  # seconds
# TaskRunState from a tuple of all its fields, without the named tuple's keyword handling
_new_task_state = partial(tuple.__new__, TaskRunState)
_RECORDERS: weakref.WeakSet[RunRecorder] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for recorder in list(_RECORDERS):
        recorder._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RunRecorder:
    """Reports flow run ``run_id`` to ``store`` and ``progress`` (either may be None; see
    the module docstring)."""

    def __init__(
        self, store: RunStore | None, run_id: str, progress: RunProgress | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.progress = progress
        self._pid = os.getpid()
        _RECORDERS.add(self)
        self._last: dict[tuple[str, int], State] = {}
        # task runs that entered Running (when, run count), and those of them announced
        self._running: dict[tuple[str, int], tuple[float, int]] = {}
        self._announced: set[tuple[str, int]] = set()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_detached, ())

    # -- the flow run ---------------------------------------------------------------------

    def started(
        self,
        flow_name: str,
        parameters: Mapping[str, Any],
        structure: dict[str, Any],
        source: str | None,
        resumed_from: str | None,
    ) -> None:
        """The run began: record it, and start copying its log lines to the store."""
        if self.progress is not None:
            self.progress.start()
        if self.store is None:
            return
        self.store.add_ticker(self.overdue)
        self.store.submit(
            FlowRunStarted(
                run_id=self.run_id,
                flow_name=flow_name,
                time=_now(),
                parameters={k: _short_repr(v) for k, v in parameters.items()},
                structure=structure,
                source=source,
                host=socket.gethostname(),
                pid=self._pid,
                resumed_from=resumed_from,
            )
        )
        self.store.submit(FlowRunState(self.run_id, "Running", "Running flow.", _now()))
        add_line_sink(self._log_line)

    def flow_state(self, state: State) -> None:
        if self.store is not None:
            self.store.submit(
                FlowRunState(self.run_id, type(state).__name__, _message(state), _now())
            )

    def finished(self, state: State) -> None:
        """The run ended in ``state``."""
        if self.progress is not None:
            self.progress.stop()
        if self.store is not None:
            remove_line_sink(self._log_line)
            self.store.remove_ticker(self.overdue)
            self.flow_state(state)

    # -- task runs ------------------------------------------------------------------------

    def task_state(self, key: tuple[str, int], state: State, run_count: int) -> None:
        """A TaskRunner in this process moved task run ``key`` (its slug and map index,
        -1 for a task that is not mapped or a mapped parent) to ``state``."""
        if type(state) is Running:  # (the progress display counts finished runs only)
            if self.store is not None:
                self._running[key] = (time.time(), run_count)
            return
        self._last[key] = state
        self._submit(key, state, run_count)

    def collected(self, slug: str, map_index: int, state: State) -> None:
        """The driver holds ``state`` for a task run (``map_index`` -1 for a task that is
        not mapped, or a mapped parent); recorded unless already reported."""
        key = (slug, map_index)
        if self._last.get(key) is not state:
            self._last[key] = state
            self._submit(key, state, getattr(state, "run_count", None) or 1)

    def collected_children(self, slug: str, states: Sequence[State]) -> None:
        """:meth:`collected` for each child of a mapped task, in one call."""
        last = self._last
        for index, state in enumerate(states):
            key = (slug, index)
            if last.get(key) is not state:
                last[key] = state
                self._submit(key, state, getattr(state, "run_count", None) or 1)

    def collected_unkept(self, slug: str, states: Iterable[tuple[int, State]]) -> None:
        """:meth:`collected` for ``(map index, state)`` of children the driver holds in
        compact form (``engine/child_states.py``): each is recorded, none is remembered
        (remembering a million State objects is what the compact form avoids)."""
        for index, state in states:
            self._submit((slug, index), state, getattr(state, "run_count", None) or 1)

    def _submit(self, key: tuple[str, int], state: State, run_count: int) -> None:
        if self.progress is not None:
            self.progress.update(key[0], key[1], state)
        store = self.store
        if store is None:
            return
        # the writer thread's ticker may be announcing this run's Running right now: at
        # worst it is then recorded twice (``started`` keeps the first), never lost
        entered = self._running.pop(key, None)
        started = None
        if entered is not None:
            if key in self._announced:
                self._announced.discard(key)
            else:
                started = entered[0]
        message = state.message
        if message is not None and type(message) is not str:
            message = str(message)
        store.submit(
            _new_task_state(
                (
                    self.run_id,
                    key[0],
                    key[1],
                    type(state).__name__,
                    message,
                    time.time(),
                    run_count,
                    state._result.location if isinstance(state, Success) else None,
                    state.n_map_states if type(state) is Mapped else None,
                    started,
                )
            )
        )

    def overdue(self) -> list[TaskRunState]:
        """(The store's writer thread.) ``Running`` events for the task runs that entered
        Running more than a quarter of a second ago and have not finished."""
        if not self._running:
            return []
        cutoff = time.time() - _ANNOUNCE_RUNNING_AFTER
        events = []
        for key, (entered, run_count) in list(self._running.items()):
            if entered <= cutoff and key not in self._announced:
                self._announced.add(key)
                if key not in self._running:  # it finished meanwhile: its end says it all
                    self._announced.discard(key)
                    continue
                events.append(
                    TaskRunState(
                        self.run_id,
                        key[0],
                        key[1],
                        "Running",
                        None,
                        entered,
                        run_count,
                    )
                )
        return events

    def _forked(self) -> None:
        """In a child made by ``fork`` (a process pool): report nothing from here; the
        driver reports what the child's task runs did."""
        self.store = None
        self.progress = None

    # -- log lines ------------------------------------------------------------------------

    def _log_line(self, logger: str, level: int, message: str, created: float) -> None:
        scope = _context._scope.get()
        if scope is None or scope.get("flow_run_id") != self.run_id:
            return
        index = scope.get("map_index")
        store = self.store
        if store is not None:
            store.submit(
                LogLine(
                    self.run_id,
                    scope.get("task_slug"),
                    -1 if index is None else index,
                    created,
                    level,
                    logger,
                    message,
                )
            )


def _detached() -> None:
    """What a recorder becomes in another process: nothing (see the module docstring)."""
    return None


def _message(state: State) -> str | None:
    message = state.message
    return message if message is None or type(message) is str else str(message)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a user's __repr__ that fails must not fail the run
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    return text if len(text) <= _PARAMETER_REPR_LIMIT else text[: _PARAMETER_REPR_LIMIT - 3] + "..."
