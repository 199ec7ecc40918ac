"""The run journal's rows: how a batch of task states and log lines is packed, and read.

The writer does not look inside what it journals: the flow's process packs each run's
task states and log lines of a batch into one row (:func:`pack`, on the store's feeder
thread, once per run and batch, in C), and the writer inserts the rows as they come. A
reader unpacks a row (:func:`unpack`) when it folds the journal into the tables
(:func:`flowcore.runs.writes.fold`)::

    row      (run id, earliest time, blob): the run, the epoch seconds of its earliest
             event in the row (its ``flow_runs`` placeholder's start, until its
             FlowRunStarted is written), and
    blob     a pickle of ``(task states, log lines)``: two lists of plain tuples, the
             fields of :class:`~flowcore.runs.events.TaskRunState` and
             :class:`~flowcore.runs.events.LogLine`

A blob never holds anything but tuples of plain values, and :func:`unpack` refuses
anything else, so reading a shared database never runs code a row names.

This module is imported by the flow's process (the feeder packs): it needs no more than
:mod:`pickle`.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

__all__ = ["Row", "pack", "unpack"]

#: (run id, epoch seconds of its earliest event in the row, blob)
Row = tuple[str, float, bytes]

_run_id = itemgetter(0)
_STATE_TIME = 5  # TaskRunState.time
_LINE_TIME = 3  # LogLine.time


def pack(
    state_lists: Iterable[Sequence[tuple[Any, ...]]], lines: Sequence[tuple[Any, ...]]
) -> list[Row]:
    """One row per run of the task states (``state_lists``: lists of tuples, usually each
    of one run, as a recorder's drain gives them) and log lines (tuples), in the order
    given. A run's earliest time is that of its first task state, or of its first line
    when it has no task states."""
    runs: dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {}
    for states in state_lists:
        if not states:
            continue
        ids = set(map(_run_id, states))
        if len(ids) == 1:
            run = runs.get(states[0][0])
            if run is None:
                runs[states[0][0]] = (list(states), [])
            else:
                run[0].extend(states)
            continue
        for state in states:  # several runs' states in one list: split them (rare)
            runs.setdefault(state[0], ([], []))[0].append(state)
    for line in lines:
        runs.setdefault(line[0], ([], []))[1].append(line)
    return [
        (
            run_id,
            states[0][_STATE_TIME] if states else run_lines[0][_LINE_TIME],
            pickle.dumps((states, run_lines), protocol=5),
        )
        for run_id, (states, run_lines) in runs.items()
    ]


def unpack(blob: bytes) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A row's ``(task states, log lines)``; a blob holding anything but plain values is
    refused (``pickle.UnpicklingError``)."""
    states, lines = _PlainUnpickler(io.BytesIO(blob)).load()
    return states, lines


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain values only: a class or function named in the data is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"run journal: unexpected object {module}.{name}")
