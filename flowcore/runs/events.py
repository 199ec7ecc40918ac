"""What the runners tell the run store: small, picklable event records.

The engine reports through :class:`flowcore.runs.recorder.RunRecorder` (one small
interface); the recorder turns what it is told into these events and hands them to
:meth:`flowcore.runs.store.RunStore.submit`, which writes them in batches on a writer
thread. Events carry names and strings only (state class names, messages, result
locations), never States, Results or values, so they pickle cheaply from Dask workers back
to the driver and do not tie the store to the engine's classes.

The events of a flow run as a whole (started, its states, heartbeats) are slotted
dataclasses with timezone-aware UTC datetimes. The two that come once per task run or log
line, :class:`TaskRunState` and :class:`LogLine`, are named tuples with times in seconds
since the epoch (``time.time()``): a task run of a trivial task costs about 20 us, and a
dataclass with a datetime would add a tenth of that by itself; as tuples of plain values
they also go into the store's journal as they are (see :mod:`flowcore.runs.writes`).
``map_index`` is ``-1`` for a task that is not mapped, and for a mapped task's parent;
children count from 0.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

__all__ = [
    "NONE_CHECKPOINTED",
    "FlowRunStarted",
    "FlowRunState",
    "Heartbeat",
    "LogLine",
    "RunEvent",
    "TaskRunState",
    "structure_digest",
    "structure_json",
]


@dataclass(slots=True)
class FlowRunStarted:
    """A flow run began. ``structure`` is the flow's graph::

        {"tasks": [{"slug": "inc-1", "name": "inc", "mapped": False}, ...],
         "edges": [{"upstream": "inc-1", "downstream": "add-1", "key": "x",
                    "mapped": False}, ...]}

    (or that dict as JSON text, see :func:`structure_json`); ``structure_digest`` the
    text's :func:`structure_digest`, when known (a writer process is then sent a
    structure it was sent before as the digest alone: :class:`flowcore.runs.writer.
    StructureMemo`). ``parameters`` maps each
    parameter name to ``repr(value)`` (shortened);
    ``source`` is ``"/abs/path/file.py:variable"`` when known (it loads the flow again,
    for ``flowcore resume``); ``resumed_from`` the run id this run resumes."""

    run_id: str
    flow_name: str
    time: datetime
    parameters: dict[str, str] = field(default_factory=dict)
    structure: dict[str, Any] | str = field(default_factory=dict)
    source: str | None = None
    host: str = ""
    pid: int = 0
    resumed_from: str | None = None
    structure_digest: str | None = None


# The last structure encoded and its JSON: a flow's structure is one dict, memoised by the
# engine, so the runs of one flow encode it once (W1's 500 tasks: ~0.6 ms), and hand the
# writer process a string rather than a thousand small dictionaries to pickle.
_last_structure: tuple[dict[str, Any], str] | None = None


def structure_json(structure: dict[str, Any] | str) -> str:
    """``structure`` (:class:`FlowRunStarted`) as JSON text, encoded once per dict."""
    global _last_structure
    if isinstance(structure, str):
        return structure
    last = _last_structure
    if last is not None and last[0] is structure:
        return last[1]
    text = json.dumps(structure)
    _last_structure = (structure, text)
    return text


_last_digest: tuple[str, str] | None = None  # (text, its digest), as _last_structure


def structure_digest(text: str) -> str:
    """The SHA-256 (hex) of a structure's JSON text, the key it is stored under;
    computed once for the runs of one flow (the text is the one :func:`structure_json`
    keeps)."""
    global _last_digest
    last = _last_digest
    if last is not None and last[0] is text:
        return last[1]
    digest = hashlib.sha256(text.encode()).hexdigest()
    _last_digest = (text, digest)
    return digest


@dataclass(slots=True)
class FlowRunState:
    """The flow run entered ``state`` (a state class name: "Running", "Success", ...)."""

    run_id: str
    state: str
    message: str | None
    time: datetime


NONE_CHECKPOINTED = ""
"""The ``result_location`` of a task run whose value was None, with checkpointing on for
it: as Prefect 1, flowcore writes no None, and a resume restores the value None from this.
No backend stores a value at an empty location (an S3 key or a GCS blob name is never
empty, a LocalResult's root is a directory), so it names no real location."""


class TaskRunState(NamedTuple):
    """A task run (or mapped child ``map_index``) entered ``state`` at ``time`` (epoch
    seconds). ``run_count`` is the task's run count at that moment; ``result_location``
    where its value was checkpointed (None when it was not; :data:`NONE_CHECKPOINTED`
    when checkpointing was on and the value was None, which is not written); ``n_map_states`` a mapped
    parent's child count; ``started`` (epoch seconds) when this run of it entered
    ``Running``, if that was not reported as an event of its own (the recorder folds a
    quick task run's ``Running`` into its final state, see :mod:`flowcore.runs.recorder`)."""

    run_id: str
    task_slug: str
    map_index: int
    state: str
    message: str | None
    time: float
    run_count: int = 1
    result_location: str | None = None
    n_map_states: int | None = None
    started: float | None = None


class LogLine(NamedTuple):
    """One log line of a run at ``time`` (epoch seconds; ``task_slug`` None for the
    flow's own lines)."""

    run_id: str
    task_slug: str | None
    map_index: int
    time: float
    level: int
    logger: str
    message: str


@dataclass(slots=True)
class Heartbeat:
    """The process driving ``run_id`` is alive."""

    run_id: str
    time: datetime


RunEvent = FlowRunStarted | FlowRunState | TaskRunState | LogLine | Heartbeat
