"""What the run store's reads return: plain, frozen records.

:class:`~flowcore.runs.store.RunStore` builds them in :mod:`flowcore.runs.queries`; they
carry names, strings and UTC datetimes only, so the CLI can print them and ``--json`` can
dump them (``dataclasses.asdict``) without knowing the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["RunInfo", "StoredLogLine", "TaskRunInfo", "Transition", "count_text", "split_task_runs"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A flow run. ``task_counts`` counts the latest state names of its task runs and
    mapped children (a mapped parent counts as ``"Mapped"``)."""

    run_id: str
    flow_name: str
    state: str
    message: str | None
    started: datetime
    ended: datetime | None
    heartbeat: datetime
    host: str
    pid: int
    parameters: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    resumed_from: str | None = None
    structure: dict[str, Any] = field(default_factory=dict)
    task_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskRunInfo:
    """The latest state of a task run or mapped child. ``started`` is the time of its
    first ``Running`` in this run, ``ended`` that of its latest finished state."""

    task_slug: str
    map_index: int
    state: str
    message: str | None
    started: datetime | None
    ended: datetime | None
    run_count: int
    result_location: str | None
    n_map_states: int | None


@dataclass(frozen=True, slots=True)
class Transition:
    """A state entered; ``task_slug`` is None for the flow run's own states."""

    task_slug: str | None
    map_index: int
    state: str
    message: str | None
    time: datetime


@dataclass(frozen=True, slots=True)
class StoredLogLine:
    """A log line of a run (``task_slug`` None for the flow's own lines)."""

    task_slug: str | None
    map_index: int
    time: datetime
    level: int
    logger: str
    message: str


def split_task_runs(
    task_runs: Iterable[TaskRunInfo],
) -> tuple[dict[str, TaskRunInfo], dict[str, Counter[str]]]:
    """A run's task run records by task: each task's own record (a mapped task's
    parent's), and its mapped children counted by state."""
    own: dict[str, TaskRunInfo] = {}
    children: dict[str, Counter[str]] = {}
    for record in task_runs:
        if record.map_index < 0:
            own[record.task_slug] = record
        else:
            children.setdefault(record.task_slug, Counter())[record.state] += 1
    return own, children


def count_text(counts: Mapping[str, int]) -> str:
    """``"990 Success, 10 Failed"``: most frequent first."""
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda i: (-i[1], i[0])))
