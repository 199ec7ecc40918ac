"""Compact states of mapped children: what a map of a million items keeps in memory.

A mapped parent's ``map_states`` is, for a batched map, a :class:`ChildStates`: a read-mostly
sequence that holds its children compactly and makes a ``State`` object only when one is
asked for (``parent.map_states[i]``, iteration), so Prefect 1 code that reads children works
unchanged::

    ChildStates
      segments   one ChildBatch per batch of children, in index order
      overrides  {index: State} for children assigned afterwards (map_states[i] = ...)

    ChildBatch (what one batch of children returns from a worker)
      start      index of its first child
      template   the state shared by its "plain" children: their class, message, context
                 and Result, with the value and location taken out
      values     each child's value (the plain ones'; None for the others)
      locations  each child's result location (None when no child has one)
      full       {offset: State} for children that differ from the template in anything
                 but value and location (a Failed child, a Retrying one, a Cached hit...)
      errors     {offset: error} for children whose state could not leave their worker
                 process (``settle_unpicklable``): ``full`` holds them Failed with that
                 error, and the driver makes their final state from it, as for a child
                 run on its own

A plain child costs one slot in ``values`` (and one in ``locations`` if checkpointed): for
``inc.map(range(1_000_000))`` about 16 MB instead of a State, a Result and two dicts per
child (about 1 GB). Materialised states are new objects each time: equal (``==``) but not
identical to the ones the TaskRunner returned. What the run recorder is given of children
that ran elsewhere (``ChildStates.unreported``) is lighter still: their states without
values, one State shared by the plain children of a batch that have no result location.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, overload

from flowcore.engine.state import Failed, Mapped, State

__all__ = ["ChildBatch", "ChildStates", "child_results", "expand_mapped"]

_PLAIN_CONTEXT = (str, int, float, bool, type(None))
_PICKLED = ("start", "template", "values", "locations", "full", "reported", "errors")


class ChildBatch:
    """The states of children ``start .. start + len - 1`` in compact form (module docs)."""

    __slots__ = ("errors", "full", "locations", "reported", "start", "template", "values")

    def __init__(self, start: int, states: Iterable[State], reported: bool = False) -> None:
        self.start = start
        self.reported = reported  # the TaskRunners told the run recorder of these states
        self.template: State | None = None
        self.values: list[Any] = []
        self.locations: list[str | None] | None = None
        self.full: dict[int, State] = {}
        self.errors: dict[int, Exception] = {}
        for state in states:
            self.append(state)

    def __len__(self) -> int:
        return len(self.values)

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _PICKLED)

    def __setstate__(self, data: tuple[Any, ...]) -> None:
        for name, value in zip(_PICKLED, data):
            setattr(self, name, value)

    def append(self, state: State) -> None:
        """Add the next child's state. Its value goes in last, so that another thread
        that reads ``len(batch)`` first (``engine/batches.py``: a batch's progress) only
        reads children that are whole."""
        offset = len(self.values)
        if self.template is None and _can_be_template(state):
            self.template = _materialise(state, None, None)  # without value and location
        if self.template is not None and _fits(state, self.template):
            result = state._result
            if result.location is not None:
                if self.locations is None:
                    self.locations = [None] * offset
                self.locations.append(result.location)
            elif self.locations is not None:
                self.locations.append(None)
            self.values.append(result.value)
            return
        if self.locations is not None:
            self.locations.append(None)
        self.full[offset] = state
        self.values.append(None)

    def settle_unpicklable(self, check: Callable[[State, int], None]) -> None:
        """(In a worker process, when the batch cannot be pickled to leave it.) Each child
        whose state fails ``check(state, map index)`` keeps the error raised in place of
        its state (``errors``; ``full`` holds it Failed with that error, which the batches
        downstream read on the workers); the other children keep theirs."""
        for offset in range(len(self.values)):
            try:
                check(self.state(offset), self.start + offset)
            except Exception as exc:  # noqa: BLE001 - this child's outcome, not the batch's
                self.errors[offset] = exc
                self.full[offset] = Failed(str(exc), result=exc)
                self.values[offset] = None
                if self.locations is not None:
                    self.locations[offset] = None

    def state(self, offset: int) -> State:
        """A State for the child at ``offset`` in this batch."""
        found = self.full.get(offset)
        if found is not None:
            return found
        assert self.template is not None
        location = self.locations[offset] if self.locations is not None else None
        return _materialise(self.template, self.values[offset], location)

    def result(self, offset: int) -> Any:
        found = self.full.get(offset)
        return found.result if found is not None else self.values[offset]

    def __iter__(self) -> Iterator[State]:
        return (self.state(i) for i in range(len(self.values)))

    def to_record(self) -> Iterator[tuple[int, int, State]]:
        """The children's states as the run recorder reads them (class, message, context,
        run count, result location) without their values, as runs ``(offset, count,
        state)`` of children that share a State: one for the plain children next to each
        other that have no result location (module docs)."""
        template, locations, full = self.template, self.locations, self.full
        shared = None if template is None else _materialise(template, None, None)
        size = len(self.values)
        offset = 0
        while offset < size:
            found = full.get(offset)
            if found is not None:
                yield offset, 1, found
                offset += 1
            elif locations is None or locations[offset] is None:
                assert shared is not None
                end = offset + 1
                while (
                    end < size and end not in full and (locations is None or locations[end] is None)
                ):
                    end += 1
                yield offset, end - offset, shared
                offset = end
            else:
                assert template is not None
                yield offset, 1, _materialise(template, None, locations[offset])
                offset += 1


class ChildStates(Sequence[State]):
    """A mapped parent's children, held as :class:`ChildBatch` segments (module docs)."""

    def __init__(self, segments: Iterable[ChildBatch] = ()) -> None:
        self._segments = sorted(segments, key=lambda batch: batch.start)
        self._starts = [batch.start for batch in self._segments]
        self._length = sum(len(batch) for batch in self._segments)
        self.overrides: dict[int, State] = {}
        expected = 0
        for batch in self._segments:
            if batch.start != expected:
                raise ValueError(f"child batches must follow one another: {expected} expected")
            expected += len(batch)

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> State: ...

    @overload
    def __getitem__(self, index: slice) -> list[State]: ...

    def __getitem__(self, index: int | slice) -> State | list[State]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"child index {index} out of range ({self._length} children)")
        found = self.overrides.get(index)
        if found is not None:
            return found
        batch = self._segments[bisect.bisect_right(self._starts, index) - 1]
        return batch.state(index - batch.start)

    def __setitem__(self, index: int, state: State) -> None:
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"child index {index} out of range ({self._length} children)")
        self.overrides[index] = state

    def __iter__(self) -> Iterator[State]:
        overrides = self.overrides
        for batch in self._segments:
            for offset in range(len(batch)):
                index = batch.start + offset
                yield overrides[index] if index in overrides else batch.state(offset)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, ChildStates)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<ChildStates: {self._length} children in {len(self._segments)} batches>"

    def unreported(self) -> Iterator[tuple[int, int, State]]:
        """Runs ``(first index, count, state)`` of the children no TaskRunner told the run
        recorder of (they ran in another process), and of those assigned since (a run of
        one each). For recording only: a batch's states are as :meth:`ChildBatch.to_record`
        gives them (no values, shared by the plain children next to each other)."""
        overrides = self.overrides
        assigned = sorted(overrides)
        for batch in self._segments:
            if batch.reported:
                continue
            for offset, number, state in batch.to_record():
                first, end = batch.start + offset, batch.start + offset + number
                low, high = bisect.bisect_left(assigned, first), bisect.bisect_left(assigned, end)
                for index in assigned[low:high]:  # (a run is split where children were assigned)
                    if index > first:
                        yield first, index - first, state
                    first = index + 1
                if first < end:
                    yield first, end - first, state
        for index, state in overrides.items():
            yield index, 1, state

    def of_type(self, cls: type[State]) -> Iterator[State]:
        """The children whose state is a ``cls``, in index order, making State objects for
        those only (a batch whose plain children are of another class costs nothing)."""
        overrides = self.overrides

        def in_batches() -> Iterator[tuple[int, State]]:
            for batch in self._segments:
                plain = batch.template is not None and isinstance(batch.template, cls)
                for offset in range(len(batch)) if plain else sorted(batch.full):
                    index = batch.start + offset
                    if index not in overrides:
                        yield index, batch.state(offset)

        assigned = sorted(overrides.items(), key=lambda item: item[0])
        for _, state in heapq.merge(in_batches(), assigned, key=lambda item: item[0]):
            if isinstance(state, cls):
                yield state

    def summary(self) -> tuple[Any, ...]:
        """The children's states in brief, to tell whether they changed (a flow run's
        passes, ``engine/waiting.py``) without a State per child: each batch's first
        index, size and plain children's class, and each child kept whole or assigned
        since by its :func:`signature`."""
        parts: list[Any] = []
        for batch in self._segments:
            parts.append((batch.start, len(batch), type(batch.template)))
            parts.extend((batch.start + i, signature(s)) for i, s in sorted(batch.full.items()))
        parts.extend((i, signature(s)) for i, s in sorted(self.overrides.items()))
        return tuple(parts)

    def kinds(self) -> list[State]:
        """One state for each kind of child there is (a batch's template, its children kept
        whole, assigned children): what decides a flow state, without a State per child."""
        found: list[State] = []
        for batch in self._segments:
            if batch.template is not None and len(batch.full) < len(batch):
                found.append(_materialise(batch.template, None, None))
            found.extend(batch.full.values())
        found.extend(self.overrides.values())
        return found

    def results(self) -> list[Any]:
        """Every child's result value, without making State objects for plain children."""
        values: list[Any] = []
        for batch in self._segments:
            if batch.full:
                values.extend(batch.result(i) for i in range(len(batch)))
            else:
                values.extend(batch.values)
        for index, state in self.overrides.items():
            values[index] = state.result
        return values


def child_results(children: Sequence[Any]) -> list[Any]:
    """The result of each child (a mapped parent's ``result``)."""
    if isinstance(children, ChildStates):
        return children.results()
    return [child.result for child in children]


def _can_be_template(state: State) -> bool:
    return not state.cached_inputs and _plain_context(state.context)


def _plain_context(context: dict[str, Any]) -> bool:
    for value in context.values():
        if type(value) is list:
            if not all(type(item) in _PLAIN_CONTEXT for item in value):
                return False
        elif type(value) not in _PLAIN_CONTEXT:
            return False
    return True


def _fits(state: State, template: State) -> bool:
    """Whether ``state`` is ``template`` but for the result's value and location (a state
    with cached inputs never is: a template has none)."""
    if type(state) is not type(template) or state.cached_inputs:
        return False
    result, model = state._result, template._result
    return (
        type(result) is type(model)
        and _alike(state.__dict__, template.__dict__, ("_result", "cached_inputs"))
        and _alike(result.__dict__, model.__dict__, ("value", "location"))
    )


def _alike(mine: dict[str, Any], theirs: dict[str, Any], apart_from: tuple[str, ...]) -> bool:
    """Whether two attribute dicts are equal but for the keys ``apart_from``."""
    if mine.keys() != theirs.keys():
        return False
    for key, value in mine.items():
        if key in apart_from:
            continue
        other = theirs[key]
        if value is not other and value != other:
            return False
    return True


def _materialise(template: State, value: Any, location: str | None) -> State:
    """A new State like ``template`` carrying ``value`` and ``location``, sharing nothing
    mutable with it (its context and the lists in it are copied; no cached inputs)."""
    state = object.__new__(type(template))
    state.__dict__.update(template.__dict__)
    state.context = {
        key: list(item) if type(item) is list else item for key, item in template.context.items()
    }
    state.cached_inputs = {}
    result = template._result.copy()
    if result is not template._result:  # (NoResult is a shared singleton, without a value)
        result.value = value
        result.location = location
    state._result = result
    return state


def expand_mapped(states: Iterable[State], whole: bool = False) -> list[State]:
    """The states with mapped parents replaced by their children. Compact children
    (``ChildStates``) stand as one state per kind unless ``whole`` (a terminal state
    handler sees every child, as in Prefect 1): what is decided from them (the flow's
    state, a transaction group's commit) depends on their classes only."""
    expanded: list[State] = []
    for state in states:
        if isinstance(state, Mapped):
            children = state.map_states
            if isinstance(children, ChildStates) and not whole:
                expanded.extend(children.kinds())
            else:
                expanded.extend(children)
        else:
            expanded.append(state)
    return expanded


def signature(state: Any) -> tuple[Any, ...]:
    """A state in brief: its class, start time, run count and message (a message that is
    not text, an exception, counts as new each time)."""
    message = getattr(state, "message", None)
    return (
        type(state),
        getattr(state, "start_time", None),
        getattr(state, "run_count", None),
        message if message is None or isinstance(message, str) else object(),
    )
