"""``flowcore runs ls | show | logs``: the run history the run store keeps.

::

    flowcore runs ls [--flow F] [--state S] [--limit N] [--json]
    flowcore runs show RUN_ID|last [--json]   a run and its tasks (a mapped task is one row,
                                              its children counted by state)
    flowcore runs logs RUN_ID|last [--task T]

Every verb takes ``--store`` (a path or SQLAlchemy URL; default: config ``runs.store``).
A run id can be shortened to any unique prefix, as ``ls`` prints it; ``last`` names the
newest run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flowcore.cli import CliError
from flowcore.cli.output import echo_json, echo_table
from flowcore.runs.records import count_text
from flowcore.utilities.units import format_seconds, format_time

if TYPE_CHECKING:
    from flowcore.runs.store import RunInfo, RunStore, TaskSummary

__all__ = [
    "LAST",
    "find_run",
    "naming_store_source",
    "open_cli_store",
    "reading_store",
    "runs",
    "store_source",
]

LAST = "last"  # a run id argument that names the newest run (see find_run)
MAX_LIMIT = 1_000_000_000  # the largest --limit (SQLite's LIMIT is a 64-bit integer)

_STORE_HELP = "The run store: a path or SQLAlchemy URL (default: config runs.store)."


def open_cli_store(spec: str | None, *, create: bool = False) -> RunStore:
    """The run store ``--store`` names (None: config ``runs.store``). Only commands that
    run flows (``create``) make a SQLite file that is not there yet: for the others a
    store file that does not exist is an error naming it and where it came from."""
    from flowcore.runs import open_store

    missing = None if create else _missing_sqlite_file(spec)
    if missing is not None:
        raise CliError(
            f"No run store at {str(missing)!r} (from {store_source(spec)}): that file does not "
            "exist. Give the path of an existing store with --store (flows record their runs "
            "in runs.store, by default <home_dir>/flowcore.db), or run a flow recording "
            "there first"
        )
    store = open_store(spec)  # (its errors: the caller's naming_store_source)
    if store is None:
        raise CliError(
            "The run store is off (runs.store = 'none'): give --store PATH|URL, or set FLOWCORE__RUNS__STORE"
        )
    return store


@contextmanager
def naming_store_source(spec: str | None) -> Iterator[None]:
    """Run store errors raised in the block (opening the store, and each read: the
    connection is made by the first) name ``--store`` when the store came from there
    (``spec``); they name the setting ``runs.store``."""
    from flowcore.runs.store import SETTING, RunStoreError

    try:
        yield
    except RunStoreError as exc:
        if spec is None:
            raise
        raise CliError(str(exc).replace(SETTING, "--store")) from None


def reading_store(command: Callable[..., None]) -> Callable[..., None]:
    """A command taking ``--store`` (its ``store`` argument): run store errors it meets
    name where the store came from (:func:`naming_store_source`)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        with naming_store_source(kwargs.get("store")):
            command(*args, **kwargs)

    return run


def store_source(spec: str | None) -> str:
    """Where the run store's name came from, as messages say it."""
    if spec is not None:
        return "--store"
    if os.environ.get("FLOWCORE__RUNS__STORE") is not None:
        return "FLOWCORE__RUNS__STORE"
    return "config runs.store"


def _missing_sqlite_file(spec: str | None) -> Path | None:
    """The SQLite file ``spec`` (None: config ``runs.store``) names, if it does not exist;
    None for a file that exists, another database, no store, or the default store
    (``sqlite``: ``<home_dir>/flowcore.db``, made as a flow run would make it, so that a
    new user's ``flowcore runs ls`` lists no runs rather than failing)."""
    from flowcore.configuration import config

    value = spec if spec is not None else config.get_path("runs.store")
    if not isinstance(value, str) or value.strip().lower() in ("", "none", "sqlite"):
        return None
    value = value.strip()
    if value.lower().startswith("sqlite:///"):
        path = Path(value[len("sqlite:///") :].split("?")[0])
    elif "://" in value:
        return None  # another database (or SQLite in memory): its own connection says
    else:
        path = Path(value).expanduser()
    return None if path.exists() else path.absolute()


@click.group("runs")
def runs() -> None:
    """The recorded flow runs."""


@runs.command("ls")
@click.option("--flow", help="Only runs of this flow (by name).")
@click.option("--state", help="Only runs in this state (Success, Failed, Crashed, Running, ...).")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_LIMIT),
    help="At most this many runs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.option("--store", help=_STORE_HELP)
@reading_store
def ls(flow: str | None, state: str | None, limit: int, as_json: bool, store: str | None) -> None:
    """List runs, newest first."""
    opened = open_cli_store(store)
    found = opened.list_runs(flow=flow, state=state, limit=limit)
    if as_json:
        echo_json([_run_json(r) for r in found])
        return
    total = opened.count_runs(flow=flow, state=state)
    rows = [
        (
            r.run_id[:8],
            r.flow_name,
            r.state,
            format_time(r.started),
            _duration(r.started, r.ended),
            count_text(r.task_counts),
        )
        for r in found
    ]
    runs = "run" if total == 1 else "runs"
    caption = (
        f"{len(found)} of {total} {runs} in {opened.display}"
        if total > len(found)
        else f"{total} {runs} in {opened.display}"
    )
    echo_table(
        ("run", "flow", "state", "started", "duration", "tasks"), rows, caption, right=("duration",)
    )


@runs.command("show")
@click.argument("run_id", metavar="RUN_ID|last")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of tables.")
@click.option("--store", help=_STORE_HELP)
@reading_store
def show(run_id: str, as_json: bool, store: str | None) -> None:
    """A run: its state, parameters and tasks (last: the newest run)."""
    opened = open_cli_store(store)
    found = find_run(opened, run_id)
    tasks = _task_rows(found, opened.task_summaries(found.run_id))
    if as_json:
        echo_json({**_run_json(found), "tasks": tasks})
        return
    click.echo(
        f"Run {found.run_id} of {found.flow_name!r}: {found.state}"
        + (f" ({found.message})" if found.message else "")
    )
    click.echo(
        f"  started {format_time(found.started)}, ended {format_time(found.ended)}, took {_duration(found.started, found.ended)}"
    )
    click.echo(
        f"  on {found.host} (pid {found.pid})" + (f", from {found.source}" if found.source else "")
    )
    if found.resumed_from:
        click.echo(f"  resumes run {found.resumed_from}")
    for name, value in found.parameters.items():
        click.echo(f"  parameter {name} = {value}")
    rows = [
        (
            t["task"],
            t["slug"],
            t["state"] if not t["children"] else f"{t['state']}: {count_text(t['children'])}",
            str(t["run_count"]),
            _duration(t["started"], t["ended"]),
            t["message"] or "",
            t["result_location"] or "",
        )
        for t in tasks
    ]
    echo_table(
        ("task", "slug", "state", "runs", "duration", "message", "result"),
        rows,
        right=("runs", "duration"),
    )


@runs.command("logs")
@click.argument("run_id", metavar="RUN_ID|last")
@click.option("--task", help="Only this task's lines (by name or slug).")
@click.option("--store", help=_STORE_HELP)
@reading_store
def logs(run_id: str, task: str | None, store: str | None) -> None:
    """The log lines a run wrote (last: the newest run)."""
    opened = open_cli_store(store)
    found = find_run(opened, run_id)
    slug = None
    if task is not None:
        slugs = {
            t["slug"] for t in found.structure.get("tasks", []) if task in (t["name"], t["slug"])
        }
        if len(slugs) != 1:
            raise CliError(
                f"Run {found.run_id} has {'no' if not slugs else len(slugs)} task(s) named {task!r}; give its slug (see `flowcore runs show`)"
            )
        slug = slugs.pop()
    import logging

    for line in opened.logs(found.run_id, task_slug=slug):
        click.echo(
            f"{format_time(line.time)} {logging.getLevelName(line.level)} {line.logger} | {line.message}"
        )


def find_run(
    store: RunStore, run_id: str, *, flow: str | None = None, resumable: bool = False
) -> RunInfo:
    """The run ``run_id`` names: a run id, a unique prefix of one, or ``last``, the newest
    run (of ``flow``, when given). ``resumable``: the run is to be resumed, so it is found
    as ``flow.run(resume=...)`` finds it (a newest run that ended well, or a run still
    running, is an error). A CliError naming the store when there is no such run."""
    if resumable:
        from flowcore.engine.resume import find_resumable
        from flowcore.exceptions import ResumeError

        try:
            return find_resumable(store, run_id, flow)
        except ResumeError as exc:
            raise CliError(str(exc)) from None
    if run_id != LAST:
        found = store.get_run(run_id)
        if found is None:
            raise CliError(f"No run {run_id!r} in {store.display}{_prefix_hint(run_id)}")
        return found
    newest = store.list_runs(flow=flow, limit=1)
    of = "" if flow is None else f" of {flow!r}"
    if not newest:
        raise CliError(f"No run{of} in {store.display} (`flowcore runs ls` lists the runs)")
    return newest[0]


def _prefix_hint(run_id: str) -> str:
    from flowcore.runs.queries import MIN_PREFIX

    if len(run_id) < MIN_PREFIX:
        return (
            f": a run id prefix needs at least {MIN_PREFIX} characters "
            "(`flowcore runs ls` lists the runs)"
        )
    return " (`flowcore runs ls` lists the runs)"


def _task_rows(run: RunInfo, summaries: list[TaskSummary]) -> list[dict[str, Any]]:
    """One row per recorded task in flow order: the task's own record (a mapped
    parent's), and its children counted by state. A task whose own record has no start
    (a mapped parent) is timed by its children, as the UI times it."""
    order = {t["slug"]: i for i, t in enumerate(run.structure.get("tasks", []))}
    names = {t["slug"]: t["name"] for t in run.structure.get("tasks", [])}
    rows = []
    for summary in sorted(
        summaries, key=lambda s: (order.get(s.task_slug, len(order)), s.task_slug)
    ):
        record, slug = summary.record, summary.task_slug
        started, ended = (
            (record.started, record.ended)
            if record is not None and record.started is not None
            else summary.children_span()
        )
        rows.append(
            {
                "task": names.get(slug, slug),
                "slug": slug,
                "state": record.state if record else "Pending",
                "message": record.message if record else None,
                "run_count": record.run_count if record else 0,
                "started": started,
                "ended": ended,
                "result_location": record.result_location if record else None,
                "n_map_states": record.n_map_states if record else None,
                "children": dict(summary.children),
            }
        )
    return rows


def _run_json(run: RunInfo) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "flow": run.flow_name,
        "state": run.state,
        "message": run.message,
        "started": run.started,
        "ended": run.ended,
        "host": run.host,
        "pid": run.pid,
        "parameters": run.parameters,
        "source": run.source,
        "resumed_from": run.resumed_from,
        "task_counts": run.task_counts,
    }


def _duration(start: datetime | None, end: datetime | None) -> str:
    return format_seconds(None if start is None or end is None else (end - start).total_seconds())
