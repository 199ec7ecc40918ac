"""The one small interface through which the runners report a flow run to the run store.

``run_flow`` makes one :class:`RunRecorder` per flow run and puts it in the run's context
(``context.run_recorder``). Three kinds of callers report through it:

* ``run_flow`` (the driver): :meth:`RunRecorder.started`, :meth:`RunRecorder.flow_state`
  and :meth:`RunRecorder.finished`;
* a TaskRunner running in the driver's process (LocalExecutor, threads): every state
  change of its task run, as it happens (:meth:`RunRecorder.task_state`), or a whole
  quick task run at once (:meth:`RunRecorder.task_run`);
* the driver again, for the states it collects from workers in other processes
  (:meth:`RunRecorder.collected`): a recorder sent to a Dask worker or a process pool
  arrives there detached and reports nothing, so workers never open connections of their
  own; what they did reaches the store through the driver, when it collects their states
  (final states only: how long a task ran in another process is not known).

**What a state change costs the flow.** ``task_state`` and ``task_run`` do two things: the
state object is remembered as the task run's last (``_last``, by slug, and for a mapped
child by slug and then map index, so that a collected state already reported is skipped),
and ``slug, map_index, state, run_count, time, started`` are appended to a list (flat, and
a ``Running`` state as None). Nothing is kept alive that would not be anyway, as every
object kept until the drain, or to the run's end, is one more for the garbage collector to
visit: holding each Running state made W3's collections cost more than the recording, and
so did keeping each task run's ``(slug, map_index)`` key (a tracked tuple per child, kept
in ``_last`` and in the list: W3's older collections took 2.5 times as long, 2 us a child). Nothing else happens on the flow's thread: every 0.2 s the store's
feeder thread calls :meth:`RunRecorder.drain`, which takes what was appended, turns each
state into a plain tuple of :class:`~flowcore.runs.events.TaskRunState`'s fields (state
class name, message, result location, ...), which the store packs into a journal row at
once and queues for the writer process (the drain at the run's end does the same, on the
flow's thread). A
``Running`` is folded into the task run's next state (``started``), so a quick task run is
one row of the journal; one still running when a drain comes a quarter of a second after
it started is announced on its own, so a long task shows as running, and a crash leaves
it recorded as started.

The live progress display (:mod:`flowcore.runs.progress`), with or without a store, is
fed the same way: its refresh (four times a second) drains the recorder and counts what
finished.

Log lines: while a run is recorded, lines that flowcore's own log handler writes in the
driver's process for this run (``context.flow_run_id``) are sent to the store as well
(:func:`flowcore.utilities.logging.add_line_sink`).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from operator import is_
from typing import TYPE_CHECKING, Any

from flowcore.engine.result import is_checkpointed_none
from flowcore.engine.state import Mapped, Running, State, Success
from flowcore.runs.events import (
    NONE_CHECKPOINTED,
    FlowRunStarted,
    FlowRunState,
    LogLine,
    structure_digest,
    structure_json,
)
from flowcore.utilities import context as _context
from flowcore.utilities.garbage import configured_threshold, fewer_collections
from flowcore.utilities.logging import add_line_sink, remove_line_sink
from flowcore.utilities.processes import host_name

if TYPE_CHECKING:
    from flowcore.runs.progress import RunProgress
    from flowcore.runs.store import RunStore

__all__ = ["RunRecorder"]

_PARAMETER_REPR_LIMIT = 200
_ANNOUNCE_RUNNING_AFTER = 0.25  # seconds
_time = time.time
# what the drain needs to know of a state class (found once per class: _kind)
_OTHER, _RUNNING, _SUCCESS, _MAPPED = range(4)  # (Mapped is a Success too)
_KINDS: dict[type, int] = {type(None): _RUNNING}  # (task_state keeps a Running as None)


def _kind(cls: type) -> int:
    kind = (
        _RUNNING
        if cls is Running
        else _MAPPED
        if cls is Mapped
        else _SUCCESS
        if issubclass(cls, Success)
        else _OTHER
    )
    _KINDS[cls] = kind
    return kind


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
        self._began = time.monotonic()
        _RECORDERS.add(self)
        self._last: dict[str, State] = {}  # by slug: tasks that are not mapped, parents
        # by slug, then map index (a defaultdict: its missing key is filled in C, at once
        # for runner threads that report the same task's children)
        self._last_children: defaultdict[str, dict[int, State]] = defaultdict(dict)
        # what the runners reported since the last drain, six items each, flat: slug, map
        # index, state (None: Running), run count, epoch seconds, when it entered Running
        # (or None); see the module docstring
        self._raw: list[Any] = []
        self._drain_lock = threading.Lock()
        # (drain) task runs that entered Running (when, run count), and those announced
        self._running: dict[tuple[str, int], tuple[float, int]] = {}
        self._announced: set[tuple[str, int]] = set()
        # task runs reported by task_began and not yet by task_run (when, run count); set
        # and cleared by the runners' threads, read by the drain
        self._begun: dict[tuple[str, int], tuple[float, int]] = {}
        if store is None:  # the progress display alone counts finished task runs only
            self.task_state = self._task_state_counted  # type: ignore[method-assign]
            self.task_run = self._task_run_counted  # type: ignore[method-assign]
            self.task_began = _ignore_began  # type: ignore[method-assign]

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
            self.progress.start(self.drain)
        if self.store is None:
            return
        text = structure_json(structure)
        self.store.submit(
            FlowRunStarted(
                run_id=self.run_id,
                flow_name=flow_name,
                time=_now(),
                parameters={k: _short_repr(v) for k, v in parameters.items()},
                structure=text,
                structure_digest=structure_digest(text),
                source=source,
                host=host_name(),
                pid=self._pid,
                resumed_from=resumed_from,
            )
        )
        self.store.submit(FlowRunState(self.run_id, "Running", "Running flow.", _now()))
        self.store.add_source(self.drain)
        add_line_sink(self._log_line)

    def flow_state(self, state: State) -> None:
        if self.store is not None:
            self.store.submit(
                FlowRunState(self.run_id, type(state).__name__, _message(state), _now())
            )

    def finished(self, state: State) -> None:
        """The run ended in ``state``."""
        if self.store is not None:
            remove_line_sink(self._log_line)
            self.store.remove_source(self.drain)
        self.drain()
        if self.progress is not None:
            self.progress.stop()
        if self.store is not None:
            self.flow_state(state)
            # A run longer than a batch interval hands its last records over at once, as
            # it handed the others during the run; a shorter one's go with the next batch
            # (at most an interval later): a process running many small flows then wakes
            # the feeder thread once an interval, not once a run (a wake took a run of a
            # few tenths of a millisecond about 0.2 ms of its own thread's time).
            if time.monotonic() - self._began >= self.store.batch_interval:
                self.store.hand_over()

    # -- task runs ------------------------------------------------------------------------

    def task_state(self, key: tuple[str, int], state: State, run_count: int) -> None:
        """A TaskRunner in this process moved task run ``key`` (its slug and map index,
        -1 for a task that is not mapped or a mapped parent) to ``state``."""
        slug, index = key
        if type(state) is Running:  # kept as None: a Running state held until the drain
            # would live on with its Result, and the collector visit them all
            self._begun.pop(key, None)  # (a run begun by task_began that raised)
            self._raw.extend((slug, index, None, run_count, _time(), None))
        else:
            self._remember(slug, index, state)
            self._raw.extend((slug, index, state, run_count, _time(), None))

    def _task_state_counted(self, key: tuple[str, int], state: State, run_count: int) -> None:
        """:meth:`task_state` for a recorder without a store: a Running is not needed."""
        if type(state) is not Running:
            slug, index = key
            self._remember(slug, index, state)
            self._raw.extend((slug, index, state, run_count, 0.0, None))

    def _task_run_counted(
        self, key: tuple[str, int], state: State, run_count: int, started: float
    ) -> None:
        """:meth:`task_run` for a recorder without a store: no time is taken, so no float
        object per report waits for the drain (the display on a map of 100,000 children:
        1.06x with one, 1.04x without)."""
        slug, index = key
        if index < 0:
            self._last[slug] = state
        else:
            self._last_children[slug][index] = state  # (_remember, inline: once per run)
        self._raw.extend((slug, index, state, run_count, 0.0, None))

    def _remember(self, slug: str, index: int, state: State) -> None:
        """Note ``state`` as task run ``(slug, index)``'s last reported (see the module
        docstring: no key tuple is kept)."""
        if index < 0:
            self._last[slug] = state
        else:
            self._last_children[slug][index] = state

    def _reported(self, slug: str, index: int) -> State | None:
        """The state last reported for task run ``(slug, index)``, if any."""
        if index < 0:
            return self._last.get(slug)
        children = self._last_children.get(slug)
        return None if children is None else children.get(index)

    def task_began(self, key: tuple[str, int], run_count: int, started: float) -> None:
        """Task run ``key`` entered ``Running`` at ``started`` and will be reported by
        :meth:`task_run` when it ends: until then a drain can announce it as running (a
        long task shows as running, and a crash leaves it recorded as started)."""
        self._begun[key] = (started, run_count)

    def task_run(self, key: tuple[str, int], state: State, run_count: int, started: float) -> None:
        """A TaskRunner in this process ran task run ``key`` from ``Running`` (entered at
        ``started``, seconds since the epoch as ``time.time()`` gives them) to ``state`` in
        one go, and reported no state of it in between: one call instead of
        :meth:`task_state` for ``Running`` and then for ``state`` (after
        :meth:`task_began`)."""
        self._begun.pop(key, None)  # (before the report: see _convert)
        slug, index = key
        if index < 0:
            self._last[slug] = state
        else:
            self._last_children[slug][index] = state  # (_remember, inline: once per run)
        self._raw.extend((slug, index, state, run_count, _time(), started))

    def collected(self, slug: str, map_index: int, state: State) -> None:
        """The driver holds ``state`` for a task run (``map_index`` -1 for a task that is
        not mapped, or a mapped parent); recorded unless already reported."""
        if self._reported(slug, map_index) is not state:
            self._remember(slug, map_index, state)
            self._raw.extend((slug, map_index, state, _run_count(state), _time(), None))

    def collected_pass(
        self, slugs: Mapping[Any, str], task_states: Mapping[Any, Any]
    ) -> list[tuple[str, Mapped]]:
        """:meth:`collected` for the state of every task a pass ended with (``task_states``,
        by task; ``slugs`` names them), in one loop. Returns ``(slug, state)`` of the mapped
        parents among them, whose children the caller reports
        (:meth:`collected_children`, :meth:`collected_unkept`)."""
        last = self._last
        get = last.get
        now = _time()
        raw: list[Any] = []
        mapped: list[tuple[str, Mapped]] = []
        for task, state in task_states.items():
            slug = slugs.get(task)
            if slug is None:
                continue
            if get(slug) is not state:
                if not isinstance(state, State):
                    continue
                last[slug] = state
                raw += (slug, -1, state, _run_count(state), now, None)
            if isinstance(state, Mapped):
                mapped.append((slug, state))
        if raw:
            self._raw += raw
        return mapped

    def collected_children(self, slug: str, states: Sequence[State]) -> None:
        """:meth:`collected` for each child of a mapped task, in one call."""
        known = self._last_children[slug]
        get = known.get
        if len(known) == len(states) and all(map(is_, map(get, range(len(states))), states)):
            return  # each reported as it is (the children ran here): checked in C
        new = [(i, s) for i, s in enumerate(states) if get(i) is not s]
        if new:
            now = _time()
            known.update(new)
            self._raw += [
                field
                for i, s in new
                for field in (slug, i, s, getattr(s, "run_count", None) or 1, now, None)
            ]  # (_run_count, inline: once per child)

    def collected_unkept(self, slug: str, runs: Iterable[tuple[int, int, State]]) -> None:
        """:meth:`collected` for children the driver holds in compact form
        (``engine/child_states.py``), given as runs ``(first map index, count, state)`` of
        children that share a state: each child is recorded, none is remembered
        (remembering a million State objects is what the compact form avoids), and they
        are sent on every 50,000 children, so that they are not all held at once. They ran
        in another process (no runner here reported them), so a run's row is made once and
        copied for each of its children."""
        now = _time()
        rows: list[tuple[Any, ...]] = []
        progress = self.progress
        for first, number, state in runs:
            run_count = getattr(state, "run_count", None) or 1  # (_run_count, inline)
            with self._drain_lock:  # (as drain: the display and _convert's state)
                if progress is not None:
                    progress.count((slug, i, state) for i in range(first, first + number))
                made = self._convert(
                    iter([(slug, first, state, run_count, now, None)]), announce=False
                )  # (the announcements are drain's: rows for this run only)
            if not made:  # (a Running state: not a row of its own)
                continue
            run_id, _, _, name, message, when, count, location, children, started = made[0]
            rows += [
                (run_id, slug, i, name, message, when, count, location, children, started)
                for i in range(first, first + number)
            ]
            if len(rows) >= 50_000:
                self._send_rows(rows)
                rows = []
        self._send_rows(rows)

    def _send_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Queue converted rows for the store, after what was reported before them."""
        if not rows:
            return
        self.drain()
        store = self.store
        if store is not None:
            with self._drain_lock:
                store.submit_task_states(rows)
            store.hand_over()  # (packed now, not at the feeder's next turn: 50,000 rows wait less)

    def drain(self) -> None:
        """Take what the runners reported since the last call: count it on the progress
        display, and queue it for the store as plain tuples (see the module docstring).
        Called by the store's feeder thread, the display's refresh, and at the run's end.

        It makes a tuple per task run at once, so it runs with the garbage collector's
        threshold raised as a flow run does (``utilities/garbage.py``): the drain at the
        run's end comes after the run's own raise, and at the default threshold it set
        off 7-8 collections on each 10,000 task runs."""
        with self._drain_lock:
            raw = self._raw
            taken = len(raw)
            batch = raw[:taken]
            del raw[:taken]  # (runners only extend: what came meanwhile stays)
            if not batch and not self._running and not self._begun:
                return
            with fewer_collections(configured_threshold()):
                progress = self.progress
                if progress is not None:
                    progress.count_columns(batch[0::6], batch[1::6], batch[2::6])
                store = self.store
                if store is not None:
                    store.submit_task_states(self._convert(_reports(batch)))

    def _convert(
        self, reports: Iterator[tuple[Any, ...]], announce: bool = True
    ) -> list[tuple[Any, ...]]:
        """The rows of ``reports``; with ``announce``, followed by a ``Running`` row for each
        task run that has been running for a while and was not announced yet."""
        run_id = self.run_id
        running = self._running
        announced = self._announced
        kinds = _KINDS
        out: list[tuple[Any, ...]] = []
        append = out.append
        for slug, index, state, run_count, when, started in reports:
            cls = type(state)
            kind = kinds.get(cls)
            if kind is None:
                kind = _kind(cls)
            if kind == _RUNNING:
                running[slug, index] = (when, run_count)
                continue
            if running or announced:
                key = (slug, index)
                entered = running.pop(key, None) if running else None
                if key in announced:  # its Running went as a row of its own
                    announced.discard(key)
                    started = None
                elif entered is not None and started is None:
                    started = entered[0]
            message = state.message
            if message is not None and type(message) is not str:
                message = str(message)
            location = None
            if kind >= _SUCCESS:
                result = state._result
                location = result.location
                if location is None and result.value is None and is_checkpointed_none(result):
                    location = NONE_CHECKPOINTED
            append(
                (
                    run_id,
                    slug,
                    index,
                    cls.__name__,
                    message,
                    when,
                    run_count,
                    location,
                    state.n_map_states if kind == _MAPPED else None,
                    started,
                )
            )
        if announce and (running or self._begun):
            # (_begun is copied after the reports were taken: a run that ended since is
            # out of it, as task_run takes it out before it reports)
            cutoff = _time() - _ANNOUNCE_RUNNING_AFTER
            for key, (entered_at, run_count) in [*running.items(), *self._begun.copy().items()]:
                if entered_at <= cutoff and key not in announced:
                    announced.add(key)
                    append((run_id, key[0], key[1], "Running", None, entered_at, run_count,
                            None, None, None))  # fmt: skip
        return out

    def _forked(self) -> None:
        """In a child made by ``fork`` (a process pool): report nothing from here; the
        driver reports what the child's task runs did."""
        self.store = None
        self.progress = None
        self._raw = []
        self._drain_lock = threading.Lock()

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


def _reports(batch: list[Any]) -> Iterator[tuple[Any, ...]]:
    """The reports in a drained batch, six fields each. (An iterator, not a list: zip
    reuses its tuple, so no tracked tuple per report is made for the collector to visit.)"""
    fields = iter(batch)
    return zip(fields, fields, fields, fields, fields, fields)


def _ignore_began(key: tuple[str, int], run_count: int, started: float) -> None:
    """:meth:`RunRecorder.task_began` for a recorder without a store."""


def _detached() -> None:
    """What a recorder becomes in another process: nothing (see the module docstring)."""
    return None


def _run_count(state: State) -> int:
    """The run count a state collected by the driver reports (a Retrying state's own)."""
    return getattr(state, "run_count", None) or 1


def _message(state: State) -> str | None:
    message = state.message
    return message if message is None or type(message) is str else str(message)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a user's __repr__ that fails must not fail the run
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    return text if len(text) <= _PARAMETER_REPR_LIMIT else text[: _PARAMETER_REPR_LIMIT - 3] + "..."
