"""What the run store's reads return: plain, frozen records.

:class:`~flowcore.runs.store.RunStore` builds them in :mod:`flowcore.runs.queries`; they
carry names, strings and UTC datetimes only, so the CLI can print them and ``--json`` can
dump them (``dataclasses.asdict``) without knowing the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowcore.runs.states import is_finished

__all__ = ["RunInfo", "StoredLogLine", "TaskRunInfo", "TaskSummary", "Transition", "count_text"]


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
class TaskSummary:
    """A task of a run as a whole (what a run's page, its graph and ``flowcore runs
    show`` display, read with one grouped query however many children it has).

    ``record`` is the task's own record (a mapped task's parent's; None while it has
    none), ``children`` counts its mapped children by their latest state, and
    ``first_start`` and ``last_end`` span them: the earliest start and the latest end of
    a child (a child with only one of the two counts it as both; None without children,
    or while none has either).
    """

    task_slug: str
    record: TaskRunInfo | None
    children: dict[str, int] = field(default_factory=dict)
    first_start: datetime | None = None
    last_end: datetime | None = None

    def children_span(self) -> tuple[datetime | None, datetime | None]:
        """When its children ran, the times of a task whose own record has no start (a
        mapped task's parent): from the first child's start to the last one's end, the
        end None while some have not finished (of the children recorded, or of the
        ``n_map_states`` its record says it has); (None, None) while none has started."""
        if self.first_start is None:
            return None, None
        done = sum(n for state, n in self.children.items() if is_finished(state))
        n_map = self.record.n_map_states if self.record is not None else None
        finished = done == max(n_map or 0, sum(self.children.values()))
        return self.first_start, self.last_end if finished else None


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


def count_text(counts: Mapping[str, int]) -> str:
    """``"990 Success, 10 Failed"``: most frequent first."""
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda i: (-i[1], i[0])))
