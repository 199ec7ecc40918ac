"""What the UI shows, as plain data: run store and cache records turned into dicts.

Every page of the UI is also a JSON document (``/api/...``); both are built here, from the
records of :mod:`flowcore.runs.records` and :class:`flowcore.caching.cache.CacheEntry`, by
small functions with no I/O. The JSON keeps times as ISO 8601 text and durations in
seconds; the templates format them with the filters at the end of this module.

A run's *task rows* are one row per task of its recorded structure, in flow order: the
task's own record (a mapped task's parent) and its children counted by state::

    {"index": 1, "task": "square", "slug": "square-1", "mapped": True, "state": "Mapped",
     "children": {"Success": 990, "Failed": 10}, "done": 1000, "total": 1000, ...}

A mapped task's own record has no start: its row's ``started``, ``ended`` and
``duration`` span its children (from the first child's start to the last one's end, or
to now while some have not finished).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from flowcore.caching.cache import CacheEntry
from flowcore.runs.records import RunInfo, StoredLogLine, TaskRunInfo, TaskSummary, Transition
from flowcore.runs.states import RESUMABLE_FINISHED_STATES, is_failed, is_finished
from flowcore.utilities.units import format_duration, format_seconds, format_size, format_time

__all__ = [
    "cache_json",
    "child_json",
    "duration",
    "ended_badly",
    "format_age",
    "format_seconds",
    "format_time",
    "log_json",
    "run_json",
    "resumable",
    "run_url",
    "task_rows",
    "task_url",
    "transition_json",
]


def run_url(run_id: str) -> str:
    """The run's page.

    >>> run_url("8d0e-12")
    '/runs/8d0e-12'
    """
    return "/runs/" + quote(run_id, safe="")


def task_url(run_id: str, slug: str, map_index: int | None = None) -> str:
    """A task's page in a run (a mapped child's, with ``map_index``).

    >>> task_url("r1", "add/x 1"), task_url("r1", "sq-1", 3)
    ('/runs/r1/tasks/add%2Fx%201', '/runs/r1/tasks/sq-1?map_index=3')
    """
    url = f"{run_url(run_id)}/tasks/{quote(slug, safe='')}"
    return url if map_index is None else f"{url}?map_index={map_index}"


def duration(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end`` (None unless both are known)."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def run_json(run: RunInfo, now: datetime | None = None) -> dict[str, Any]:
    """A run as the runs list and the run page show it. A run not finished yet counts
    its duration up to ``now``."""
    finished = is_finished(run.state)
    until = run.ended if finished else (now or datetime.now(timezone.utc))
    return {
        "run_id": run.run_id,
        "flow": run.flow_name,
        "state": run.state,
        "message": run.message,
        "started": _iso(run.started),
        "ended": _iso(run.ended),
        "duration": duration(run.started, until),
        "finished": finished,
        "failed": is_failed(run.state),
        "resumable": resumable(run),
        "host": run.host,
        "pid": run.pid,
        "parameters": run.parameters,
        "source": run.source,
        "resumed_from": run.resumed_from,
        "task_counts": run.task_counts,
        "url": run_url(run.run_id),
    }


def ended_badly(state: str) -> bool:
    """Whether a run in ``state`` ended, not well: failed, crashed or cancelled, what
    ``flowcore resume`` resumes. The UI offers no Resume for a run not finished: it
    may still be running (a run whose process died is Crashed once the store sees it)."""
    return state in RESUMABLE_FINISHED_STATES


def resumable(run: RunInfo) -> bool:
    """Whether the run page offers Resume: the run ended badly and recorded the file its
    flow came from."""
    return ended_badly(run.state) and bool(run.source)


def task_rows(
    run: RunInfo, summaries: list[TaskSummary], now: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per task of the run's structure, in flow order (tasks the structure does
    not name, after them), from the store's :meth:`~flowcore.runs.store.RunStore.task_summaries`;
    see the module docstring."""
    tasks = list(run.structure.get("tasks", []))
    known = {t["slug"] for t in tasks}
    # a task the structure does not name counts as mapped when only its children were recorded
    tasks += [
        {"slug": s.task_slug, "name": s.task_slug, "mapped": s.record is None}
        for s in summaries
        if s.task_slug not in known
    ]
    by_slug = {s.task_slug: s for s in summaries}
    return [
        _task_row(index, task, by_slug.get(task["slug"]), run.run_id, now)
        for index, task in enumerate(tasks)
    ]


def _task_row(
    index: int, task: dict[str, Any], summary: TaskSummary | None, run_id: str,
    now: datetime | None,
) -> dict[str, Any]:  # fmt: skip
    record = summary.record if summary is not None else None
    counts = summary.children if summary is not None else {}
    n_map = record.n_map_states if record is not None else None
    row: dict[str, Any] = {
        "index": index,
        "task": task["name"],
        "slug": task["slug"],
        "mapped": bool(task.get("mapped")),
        "state": record.state if record is not None else "Pending",
        "message": record.message if record is not None else None,
        "run_count": record.run_count if record is not None else 0,
        "started": _iso(record.started) if record is not None else None,
        "ended": _iso(record.ended) if record is not None else None,
        "duration": _task_duration(record, now),
        "result_location": record.result_location if record is not None else None,
        "n_map_states": n_map,
        "children": dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
        "done": sum(n for s, n in counts.items() if is_finished(s)),
        "total": max(n_map or 0, sum(counts.values())),
        "url": task_url(run_id, task["slug"]),
    }
    if summary is not None and row["started"] is None:
        _span_children(row, summary, now)
    return row


def _span_children(row: dict[str, Any], summary: TaskSummary, now: datetime | None) -> None:
    """A task whose own record has no start (a mapped task's parent) spans its
    children (:meth:`TaskSummary.children_span`), its duration up to now while some
    have not finished."""
    first, last = summary.children_span()
    if first is None:
        return
    row["started"], row["ended"] = _iso(first), _iso(last)
    row["duration"] = duration(first, last or now or datetime.now(timezone.utc))


def _task_duration(record: TaskRunInfo | None, now: datetime | None) -> float | None:
    if record is None or record.started is None:
        return None
    if record.ended is None and not is_finished(record.state):
        return duration(record.started, now or datetime.now(timezone.utc))
    return duration(record.started, record.ended)


def child_json(record: TaskRunInfo, run_id: str) -> dict[str, Any]:
    """A mapped child (or any task run record) as a row."""
    return {
        "map_index": record.map_index,
        "state": record.state,
        "message": record.message,
        "run_count": record.run_count,
        "started": _iso(record.started),
        "ended": _iso(record.ended),
        "duration": duration(record.started, record.ended),
        "result_location": record.result_location,
        "url": task_url(run_id, record.task_slug, record.map_index),
    }


def transition_json(transition: Transition) -> dict[str, Any]:
    """A state entered."""
    return {
        "task_slug": transition.task_slug,
        "map_index": transition.map_index,
        "state": transition.state,
        "message": transition.message,
        "time": _iso(transition.time),
    }


def log_json(line: StoredLogLine) -> dict[str, Any]:
    """A log line, with its level's name."""
    import logging

    return {
        "task_slug": line.task_slug,
        "map_index": line.map_index,
        "time": _iso(line.time),
        "level": line.level,
        "level_name": logging.getLevelName(line.level),
        "logger": line.logger,
        "message": line.message,
    }


def cache_json(entry: CacheEntry, now: datetime) -> dict[str, Any]:
    """A cache entry: its record's fields, size, age in seconds and seconds to expiry."""
    expires = entry.record.expires
    return {
        **entry.to_dict(),
        "age": entry.age(now).total_seconds(),
        "expires_in": None if expires is None else (expires - now).total_seconds(),
        "value_elsewhere": entry.elsewhere,
    }


# -- formatting for the templates ----------------------------------------------------------


def format_age(seconds: float | None, future: bool = False) -> str:
    """``3h ago`` (or, with ``future``, ``in 3h``; ``expired`` when that is past).

    >>> format_age(7200), format_age(90, future=True), format_age(-5, future=True)
    ('2h ago', 'in 1m30s', 'expired')
    """
    if seconds is None:
        return "never" if future else "-"
    if future:
        return "expired" if seconds <= 0 else "in " + format_duration(timedelta(seconds=seconds))
    return format_duration(timedelta(seconds=max(seconds, 0))) + " ago"


def format_bytes(size: int | None) -> str:
    """A size in 1000-based units (``-`` when unknown)."""
    return format_size(size)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()
