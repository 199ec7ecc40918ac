"""Batched mapped children: one executor call runs the TaskRunner for many children.

On an executor that runs calls elsewhere (``DaskExecutor``, ``LocalDaskExecutor`` on a
pool), a map of n children used to be n calls: at a million children the Dask scheduler's
cost per call, not flowcore's, set the pace. So the FlowRunner submits a mapped task's
children in batches (``submit_batches``)::

    batch size    task.map(..., batch_size=N) > flow.run(map_batch_size=N) > automatic:
                  ceil(n / (4 x the executor's worker count)), at most 1,000; 1 (one call
                  per child, as before) when that is under 8, or when the executor runs
                  calls in the caller (LocalExecutor, the synchronous scheduler)
    one call      run_batch(task, start, stop, ...) on a worker: for each child i, its
                  upstream states (element i of each mapped upstream, built on the worker),
                  then run_child: the same TaskRunner run a single child gets (own state,
                  retries, timeout, checkpoint, target, cache record), on one TaskRunner
                  the batch's children that start Pending share; returns a ChildBatch
                  (``child_states``: compact). Before each child it checks the
                  session's cancellation event (``executor.cancellation_event()``), as
                  the executor checks it before each call: once the session has ended,
                  the batch starts no more children and returns the ones it ran
    chained map   b.map(a.map(xs)): b's batch gets the futures of a's batches that hold
                  its children, so the scheduler moves them worker to worker
    collection    collect_children: one ChildStates of the batches (a mapped parent's
                  ``map_states``)

A batch lost with its worker (``WorkerCrashed``): the children it reported as finished
(``executors.progress``: the batch's ChildBatch is read and what is new sent to the driver
every ``progress.FLUSH_EVERY`` seconds while the batch runs, and a child reported running
says it ended before the next starts) keep their states; the child reported running
when the worker died is ``Crashed`` and the children after it run again as one call; with
no child reported running, the others run again, each as its own call. A call of
children run again that is lost too is settled by the same rules, until every child has
a state; a call of one child is ``Crashed`` (by the executor's usual rules) when it was
the only call lost, else run again alone, one after the other (a broken process pool
fails every call it held, a Dask worker of several threads runs several), so a child
that kills its worker every time is ``Crashed`` on its own and takes no other child with
it.
A child that finished less than ``progress.FLUSH_EVERY`` seconds before its worker died
had not been reported, and runs again (a target or checkpoint-backed cache makes that run a
hit). A batch that never started (``UpstreamCrashed``) or that the executor could not
carry out (``DaskTaskError``) gives each of its children that outcome, as single calls do.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from flowcore.core.task_arguments import check_batch_size
from flowcore.engine.calls import attach_children, collect, run_child, shared_runner, with_value
from flowcore.engine.child_states import ChildBatch, ChildStates
from flowcore.engine.state import Mapped, State
from flowcore.exceptions import WorkerCrashed
from flowcore.executors.progress import follow, piece_ended
from flowcore.utilities import context as _context
from flowcore.utilities.garbage import configured_threshold, fewer_collections

if TYPE_CHECKING:
    from flowcore.core.edge import Edge
    from flowcore.core.task import Task

__all__ = [
    "BatchedChildren",
    "batch_size",
    "collect_children",
    "finished",
    "finished_children",
    "join_batches",
    "pick_child",
    "run_batch",
    "submit_batches",
]

MAX_BATCH = 1000
BATCHES_PER_WORKER = 4
MIN_BATCH = 8


def batch_size(task: Task, count: int, executor: Any, flow_context: dict[str, Any]) -> int:
    """How many children of ``task``'s map of ``count`` go in one call (module docs)."""
    given = getattr(task, "map_batch_size", None)
    if given is None:
        given = check_batch_size(flow_context.get("map_batch_size"), "flow.run(map_batch_size=...)")
    if given is not None:
        return int(given)
    counter = getattr(executor, "worker_count", None)
    workers = counter() if counter is not None else None
    if not workers or count <= 0:
        return 1
    size = min(MAX_BATCH, math.ceil(count / (workers * BATCHES_PER_WORKER)))
    return size if size >= MIN_BATCH else 1


class _Batch(NamedTuple):
    start: int
    stop: int
    future: Any
    priors: list[State | None] | None


class BatchedChildren:
    """A mapped task's children, submitted as batches (a future per batch)."""

    def __init__(
        self, executor: Any, count: int, submit: Callable[[int, int, list[Any] | None], Any]
    ) -> None:
        self.executor = executor
        self.count = count
        self.batches: list[_Batch] = []
        self._submit = submit
        self._joined: Any = None
        self._starts: list[int] = []

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        """A future of child ``index``'s state (for a downstream map that is not batched)."""
        if not 0 <= index < self.count:
            raise IndexError(index)
        if len(self._starts) != len(self.batches):
            self._starts = [b.start for b in self.batches]
        position = bisect.bisect_right(self._starts, index) - 1
        return self.executor.submit(pick_child, self.batches[position].future, index)

    def joined(self) -> Any:
        """A future of every child's state (a ChildStates), for a task that reduces them."""
        if self._joined is None:
            self._joined = self.executor.submit(join_batches, [b.future for b in self.batches])
        return self._joined

    def covering(self, start: int, stop: int) -> list[Any]:
        """The futures of the batches that hold children ``start .. stop - 1``."""
        return [b.future for b in self.batches if b.start < stop and start < b.stop]


def submit_batches(
    executor: Any,
    task: Task,
    parent: Mapped,
    upstream_states: dict[Edge, Any],
    edge_children: dict[Edge, Any],
    size: int,
    run_args: tuple[Any, ...],
    extra_context: dict[str, Any],
    submitted: Callable[[int, State], None],
) -> BatchedChildren:
    """Submit ``task``'s children in batches of ``size`` (``run_args``: the flow context,
    the task context, the reduced upstreams and the runner arguments, as ``run_task``
    takes them); ``submitted(index, prior)`` is told of each child with a prior state."""
    fixed: dict[Edge, Any] = {}
    sources: dict[Edge, tuple[str, Any, Any]] = {}
    count = parent.n_map_states
    for edge, upstream in upstream_states.items():
        if not edge.mapped:
            fixed[edge] = upstream
        elif edge in edge_children:
            children = edge_children[edge]
            kind = "batches" if isinstance(children, BatchedChildren) else "states"
            sources[edge] = (kind, None, children)
            count = min(count, len(children))
        else:
            values = upstream.result
            if not hasattr(values, "__getitem__"):
                values = [None] * count
            # the batches get the upstream state without its (whole) value, and their part
            sources[edge] = ("split", with_value(upstream, None), values)
            if hasattr(values, "__len__"):
                count = min(count, len(values))

    event = getattr(executor, "cancellation_event", None)
    cancel_event = event() if event is not None else None

    def send(start: int, stop: int, prior: list[Any] | None) -> Any:
        inputs = {edge: _slice(source, start, stop) for edge, source in sources.items()}
        index = str(start) if stop == start + 1 else f"{start}-{stop - 1}"
        return executor.submit(
            run_batch,
            task,
            start,
            stop,
            prior,
            fixed,
            inputs,
            *run_args,
            cancel_event=cancel_event,
            extra_context={**extra_context, "task_index": index},
        )

    out = BatchedChildren(executor, count, send)
    for start in range(0, count, size):
        stop = min(count, start + size)
        prior = _priors(parent.map_states, start, stop)
        if prior is not None:
            for offset, state in enumerate(prior):
                if state is not None:
                    submitted(start + offset, state)
        out.batches.append(_Batch(start, stop, send(start, stop, prior), prior))
    return out


def _priors(states: Sequence[Any], start: int, stop: int) -> list[Any] | None:
    if not states:
        return None
    found = [states[i] if i < len(states) else None for i in range(start, stop)]
    return found if any(state is not None for state in found) else None


def _slice(source: tuple[str, Any, Any], start: int, stop: int) -> _Input:
    """What a batch of children ``start .. stop - 1`` needs of one mapped upstream: a plain
    tuple ``(kind, start, state, items)`` (executors find futures in plain containers):
    "split" (``items``: the batch's elements of ``state``'s result), "states" (``items``:
    the children's states, or futures of them, from ``start``) or "batches" (``items``: the
    upstream batches that hold them)."""
    kind, state, items = source
    if kind == "batches":
        return (kind, start, None, items.covering(start, stop))
    try:
        part = items[start:stop]
    except (TypeError, KeyError):
        part = [items[i] for i in range(start, stop)]
    return (kind, start, state, part)


_Input = tuple[str, int, Any, Any]


def run_batch(
    task: Task,
    start: int,
    stop: int,
    priors: list[State | None] | None,
    fixed: dict[Edge, Any],
    inputs: dict[Edge, _Input],
    flow_context: dict[str, Any],
    task_context: dict[str, Any],
    upstream_mapped: dict[Edge, Any],
    runner_args: tuple[type, Any, Any],
    cancel_event: str | None = None,
) -> ChildBatch:
    """(On a worker.) Run children ``start .. stop - 1`` of ``task`` and return their
    states compactly; while it runs, the children it finished are its progress
    (``executors.progress.follow``). Children that start Pending share one TaskRunner, which runs each as its own
    run would (``TaskRunner.prepare_children``); the others get a TaskRunner each. Like a
    flow run, a batch has the garbage collector run less often
    (``utilities/garbage.py``): it keeps its children's states to its end.

    ``cancel_event``: the session's cancellation event (``executor.cancellation_event()``),
    checked before each child as the executor checks it before each call; once it is
    cleared the batch starts no more children and returns those it ran (a shorter
    ChildBatch: a child not started has no state, as a call not started returns nothing)."""
    still_on = _cancellation_check(cancel_event)
    token = None if _context._scope.get() is flow_context else _context.push(flow_context)
    out = ChildBatch(start, (), reported=flow_context.get("run_recorder") is not None)
    attach_children(fixed, upstream_mapped)  # once for the batch, not once per child
    try:
        with fewer_collections(configured_threshold()):
            shared = shared_runner(task, runner_args, flow_context, task_context)
            follow(functools.partial(_progress, out, stop))
            for index in range(start, stop):
                if still_on is not None and not still_on():
                    break
                upstream_states = dict(fixed)
                for edge, spec in inputs.items():
                    upstream_states[edge] = _child_input(spec, index)
                prior = priors[index - start] if priors is not None else None
                state = run_child(
                    shared,
                    task,
                    prior,
                    index,
                    upstream_states,
                    flow_context,
                    task_context,
                    {},
                    runner_args,
                )
                out.append(state)
                piece_ended(index)
    finally:
        if token is not None:
            _context.pop(token)
    return out


def _cancellation_check(name: str | None) -> Callable[[], bool] | None:
    """``() -> whether the session goes on`` for the cancellation event ``name`` (None
    without one): the worker's own check (``_dask_worker.event_is_set``), which asks the
    scheduler at most once a second per process and not at all once the session told the
    worker it ended, so a batch can ask before every child."""
    if name is None:
        return None
    from flowcore.executors._dask_worker import event_is_set

    return functools.partial(event_is_set, name)


def _progress(batch: ChildBatch, stop: int, sent: int) -> tuple[list[Any], Any]:
    """What a batch running on a worker has finished since its first ``sent`` children,
    as ``(index, state)`` pairs, and the index of the child it is running (None once it is
    done): its progress (``executors.progress.follow``), read in another thread, so the
    finished children are counted first and only those are read."""
    done = len(batch)
    pieces = [(batch.start + offset, batch.state(offset)) for offset in range(sent, done)]
    running = batch.start + done
    return pieces, (running if running < stop else None)


def _child_input(spec: _Input, index: int) -> Any:
    kind, start, state, items = spec
    if kind == "split":
        return with_value(state, items[index - start])
    if kind == "states":
        return items[index - start]
    for batch in items:
        if batch.start <= index < batch.start + len(batch):
            return batch.state(index - batch.start)
    raise IndexError(f"no upstream batch holds child {index}")


def pick_child(batch: ChildBatch, index: int) -> State:
    """Child ``index``'s state from the batch that holds it."""
    return batch.state(index - batch.start)


def join_batches(batches: list[ChildBatch]) -> ChildStates:
    """Every child's state, from all the batches of a map."""
    return ChildStates(batches)


def collect_children(executor: Any, outcomes: Any, task: Task, children: Any) -> Sequence[Any]:
    """The states of ``task``'s children: a list for children submitted one per call, a
    :class:`ChildStates` for batches (a lost batch is settled as the module docs say)."""
    if not isinstance(children, BatchedChildren):
        result: list[Any] = outcomes.collect_children(executor, task, children)
        return result
    found = collect(executor, [batch.future for batch in children.batches])
    segments: list[ChildBatch] = []
    lost: list[tuple[_Batch, WorkerCrashed]] = []
    for batch, outcome in zip(children.batches, found):
        segment = _outcome_states(outcomes, task, batch, outcome)
        if segment is None:
            lost.append((batch, outcome))
        else:
            segments.append(segment)
    settled: dict[int, State] = {}
    lost_batches = [batch for batch, _ in lost]
    pending = [(batch, error, False) for batch, error in lost]
    while pending:
        shared: list[_Batch] = []
        solo: list[_Batch] = []
        for call, error, alone in pending:
            if call.stop - call.start > 1:
                shared.extend(_rerun_lost(executor, outcomes, task, children, call, error, settled))
            elif alone:  # (the only call its worker's death cost: this child killed it)
                settled[call.start] = outcomes.state(task, call.start, error)
            else:
                solo.append(call)
        pending = _run_again(executor, outcomes, task, shared, settled) if shared else []
        for call in solo:  # one at a time, so that a death is the child's own
            again = _again(children, call, call.start, call.stop)
            pending += _run_again(executor, outcomes, task, [again], settled)
    for batch in lost_batches:
        segments.append(ChildBatch(batch.start, _settled_prefix(settled, batch)))
    return ChildStates(segments)


def _settled_prefix(settled: dict[int, State], batch: _Batch) -> list[State]:
    """The states of ``batch``'s children up to the first without one (a call run again
    that a cancelled run stopped early: as a batch's own short ChildBatch, the children
    after it did not run)."""
    states = []
    for index in range(batch.start, batch.stop):
        state = settled.get(index)
        if state is None:
            break
        states.append(state)
    return states


def _settle_errors(outcomes: Any, task: Task, batch: ChildBatch) -> ChildBatch:
    """``batch`` with each child whose state could not leave its worker process
    (``ChildBatch.errors``) settled as a call the executor could not carry out is."""
    for offset, error in batch.errors.items():
        batch.full[offset] = outcomes.state(task, batch.start + offset, error)
    return batch


def _run_again(
    executor: Any, outcomes: Any, task: Task, calls: list[_Batch], settled: dict[int, State]
) -> list[tuple[_Batch, WorkerCrashed, bool]]:
    """Wait for ``calls`` (children run again) and put their children's states in
    ``settled``; the calls lost with their worker are returned, each with whether it was
    the only one lost (then a child alone in its call is the one that killed it)."""
    lost = []
    for call, outcome in zip(calls, collect(executor, [c.future for c in calls])):
        segment = _outcome_states(outcomes, task, call, outcome)
        if segment is None:
            lost.append((call, outcome))
        else:
            settled.update((segment.start + i, segment.state(i)) for i in range(len(segment)))
    return [(call, error, len(lost) == 1) for call, error in lost]


def _outcome_states(outcomes: Any, task: Task, call: _Batch, outcome: Any) -> ChildBatch | None:
    """The children's states a call of them came back with: its ChildBatch (each child
    whose state could not leave its worker settled), or the call's error as every
    child's state; None when the call was lost with its worker (``WorkerCrashed``)."""
    if isinstance(outcome, ChildBatch):
        return _settle_errors(outcomes, task, outcome)
    if isinstance(outcome, WorkerCrashed):
        return None
    return ChildBatch(
        call.start, [outcomes.state(task, i, outcome) for i in range(call.start, call.stop)]
    )


def _again(children: BatchedChildren, batch: _Batch, start: int, stop: int) -> _Batch:
    """A new call of ``batch``'s children ``start .. stop - 1``."""
    prior = None if batch.priors is None else batch.priors[start - batch.start : stop - batch.start]
    return _Batch(start, stop, children._submit(start, stop, prior), prior)


def _rerun_lost(
    executor: Any,
    outcomes: Any,
    task: Task,
    children: BatchedChildren,
    batch: _Batch,
    error: WorkerCrashed,
    settled: dict[int, State],
) -> list[_Batch]:
    """A call of children lost with its worker: the calls that run its unsettled
    children again. Reported children keep their states (into ``settled``); the child
    the last report says was running when the worker died is Crashed (as a single call
    would be), and the children after it run again as one call; when no report says
    which child was running, each unreported child runs again on its own (module docs)."""
    pieces, running = executor.partial_results(batch.future)
    settled.update(pieces)
    rest = [i for i in range(batch.start, batch.stop) if i not in settled]

    if running is not None and running in rest:
        label = f"{task.name}[{running}]"
        crashed = WorkerCrashed(
            label, error.cause, f"Task {label!r}: its Dask worker died while it ran"
        )
        settled[running] = outcomes.state(task, running, crashed)
        # (children before it were reported before it began; should a report have been
        # lost on the way, they run again too rather than be left without a state)
        again = [_again(children, batch, i, i + 1) for i in rest if i < running]
        if running + 1 < batch.stop:
            again.append(_again(children, batch, running + 1, batch.stop))
        return again
    return [_again(children, batch, index, index + 1) for index in rest]


def finished(value: Any) -> Any:
    """(After an interrupt, without waiting.) What ``value`` holds: a state as it is, the
    result of a future that has finished, or None for a future still running (or one that
    failed, or a call the session's end kept from starting, which returns nothing)."""
    if isinstance(value, (State, ChildBatch)):
        return value
    done = getattr(value, "done", None)
    if done is None or not done():
        return None
    try:
        return value.result()
    except Exception:  # noqa: BLE001 - a call that failed has no state to record
        return None


def finished_children(executor: Any, children: Any) -> Iterator[tuple[int, int, State]]:
    """(After an interrupt, without waiting.) The children of a map that have finished, as
    runs ``(first index, count, state)`` (see ``ChildBatch.to_record``): a child's state
    or finished future, the children of a finished batch, and those a running batch
    reported (``executor.partial_results``)."""
    if not isinstance(children, BatchedChildren):
        for index, child in enumerate(children):
            state = finished(child)
            if isinstance(state, State):
                yield index, 1, state
        return
    for batch in children.batches:
        found = finished(batch.future)
        if isinstance(found, ChildBatch):
            for offset, count, state in found.to_record():
                yield found.start + offset, count, state
        else:
            pieces, _ = executor.partial_results(batch.future)
            for index, state in pieces:
                yield index, 1, state
