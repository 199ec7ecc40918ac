"""The run pages: the runs list, a run, a task of a run, resuming a run.

Each builder takes the request and returns the page's data (the JSON of ``/api/...``);
what only the HTML page needs (the graph's SVG, the pager) goes under ``"page"``, which
the JSON leaves out. Builders run on Starlette's thread pool (store reads block).

A run page reads: the run, its tasks as wholes (``RunStore.task_summaries``: each task's
own record and its mapped children counted by state, one grouped query, so a map of
10,000 children costs a few rows: what the task table and the graph show), the
transitions of the flow run and of each task's own run (``map_index`` -1: a mapped task's
children have their history on the task's page), the run's last ``LINES_COUNTED`` log
lines (one read: each task's lines are counted and its last ones shown under its row,
exactly whenever the run kept no more lines than that, ``runs.max_log_lines``' default;
the page's own log table is their tail), and the runs that resumed it
(``RunStore.resumes_of``). A task's page lists its children a page at a
time (``RunStore.children``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from flowcore.exceptions import MissingExtraError
from flowcore.runs.states import STATE_NAMES, canonical
from flowcore.runs.store import (
    RunInfo,
    RunStore,
    RunStoreError,
    StoredLogLine,
    TaskRunInfo,
    TaskSummary,
)
from flowcore.ui import views
from flowcore.ui.security import read_form

__all__ = ["graph_svg", "resume", "resume_job", "run_detail", "runs_list", "task_detail"]

PER_PAGE = 50
MAX_PER_PAGE = 500
RUN_LOG_LINES = 200  # the last log lines of a run on its page
ROW_LOG_LINES = 50  # ... of each task, under its row of the run page
LINES_COUNTED = 10_000  # the run's last lines read to count each task's (runs.max_log_lines)
TASK_LOG_LINES = 1000  # the last log lines of a task on its page
CHILDREN_SHOWN = 200  # mapped children listed per page of a task
# the states a flow run is recorded in (the State filter offers these, the states of the
# runs shown and the one chosen): the engine's own, and Crashed from crash detection
FLOW_RUN_STATES = ("Success", "Failed", "Crashed", "Running", "Pending", "Scheduled")


# -- the runs list ---------------------------------------------------------------------------


def runs_list(request: Request) -> dict[str, Any]:
    """``/``: runs newest first, filtered by flow and state. The page takes ``page`` and
    ``per_page``; the API ``limit`` and ``offset`` (or the same). While a run it shows is
    in progress, the page's script refreshes its rows from the API."""
    store = _store(request)
    query = request.query_params
    flow = query.get("flow") or None
    state = query.get("state") or None
    limit = _int(
        query, "limit", _int(query, "per_page", PER_PAGE, 1, MAX_PER_PAGE), 1, MAX_PER_PAGE
    )
    page_number = _int(query, "page", 1, 1)
    offset = _int(query, "offset", (page_number - 1) * limit, 0)
    runs = store.list_runs(flow=flow, state=state, limit=limit, offset=offset)
    total = store.count_runs(flow=flow, state=state)
    now = datetime.now(timezone.utc)
    return {
        "runs": [views.run_json(run, now) for run in runs],
        "total": total,
        "limit": limit,
        "offset": offset,
        "flow": flow,
        "state": state,
        "colors": _colors([], runs),
        "page": {
            **_pager(flow, state, limit, offset, total),
            "states": _offered_states(state, runs),
        },
    }


def _offered_states(chosen: str | None, runs: list[RunInfo]) -> list[str]:
    """What the State filter offers: :data:`FLOW_RUN_STATES`, then any other state of the
    runs shown (a terminal state handler's choice) and the one chosen."""
    offered = list(FLOW_RUN_STATES)
    for name in [*(run.state for run in runs), *([canonical(chosen)] if chosen else [])]:
        if name not in offered:
            offered.append(name)
    return offered


def _pager(
    flow: str | None, state: str | None, limit: int, offset: int, total: int
) -> dict[str, Any]:
    from urllib.parse import urlencode

    def link(number: int) -> str:
        params = {"flow": flow or "", "state": state or "", "page": number}
        if limit != PER_PAGE:
            params["per_page"] = limit
        return "/?" + urlencode({k: v for k, v in params.items() if v != ""})

    number = offset // limit + 1
    last = max(1, -(-total // limit))
    beyond = offset > 0 and offset >= total  # past the last run: no such page
    return {
        "number": number,
        "last": last,
        "beyond": beyond,
        "last_link": link(last),
        "first_shown": offset + 1 if total and not beyond else 0,
        "last_shown": min(offset + limit, total),
        "previous": link(min(number, last + 1) - 1) if number > 1 else None,
        "next": link(number + 1) if offset + limit < total else None,
        "first": link(1) if number > 1 else None,
        "end": link(last) if number < last else None,
    }


# -- a run -----------------------------------------------------------------------------------


def run_detail(request: Request) -> dict[str, Any]:
    """``/runs/<id>``: the run, its task rows with each task's history and log lines,
    the flow run's history and last log lines, the runs it resumed and that resumed it."""
    store = _store(request)
    run = _run(store, request.path_params["run_id"])
    summaries = store.task_summaries(run.run_id)
    now = datetime.now(timezone.utc)
    histories: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for transition in store.transitions(run.run_id, map_index=-1):
        histories[transition.task_slug].append(views.transition_json(transition))
    lines = store.logs(run.run_id, limit=LINES_COUNTED)
    by_task: dict[str | None, list[StoredLogLine]] = defaultdict(list)
    for line in lines:
        by_task[line.task_slug].append(line)
    tasks = views.task_rows(run, summaries, now)
    for row in tasks:
        own = by_task.get(row["slug"], [])
        row["history"] = histories.get(row["slug"], [])
        row["logs"] = [views.log_json(line) for line in own[-ROW_LOG_LINES:]]
        row["log_count"] = len(own)  # all of them, unless the run has more than were read:
        row["log_count_exact"] = len(lines) < LINES_COUNTED
    jobs = request.app.state.jobs.for_run(run.run_id)
    data = {
        **views.run_json(run, now),
        "history": histories.get(None, []),
        "tasks": tasks,
        "logs": [views.log_json(line) for line in lines[-RUN_LOG_LINES:]],
        "resumed_by": _resumed_by(store, run),
        "colors": _colors(tasks, [run]),
        "resume_jobs": [
            {"job": job.id, "url": f"/resumes/{job.id}", "started": job.started.isoformat()}
            for job in jobs
        ],
    }
    if not request.url.path.startswith("/api/"):
        graph, problem = _graph_markup(run, summaries)
        data["page"] = {"graph": graph, "graph_problem": problem}
    return data


def _colors(tasks: list[dict[str, Any]], runs: list[RunInfo]) -> dict[str, str]:
    """The colour of every state the page may show (for the live updates)."""
    from flowcore.runs.graph import state_color

    names = set(STATE_NAMES)
    for run in runs:
        names.update([run.state, *run.task_counts])
    for row in tasks:
        names.update([row["state"], *row["children"]])
    return {name: state_color(name) for name in sorted(names)}


def _resumed_by(store: RunStore, run: RunInfo) -> list[dict[str, Any]]:
    return [
        {"run_id": r.run_id, "state": r.state, "url": views.run_url(r.run_id)}
        for r in store.resumes_of(run.run_id)
    ]


async def graph_svg(request: Request) -> Response:
    """``/runs/<id>/graph.svg``: the run's graph (as on its page)."""

    def draw() -> bytes:
        store = _store(request)
        run = _run(store, request.path_params["run_id"])
        return _draw(run, store.task_summaries(run.run_id))

    try:
        svg = await run_in_threadpool(draw)
    except _NoGraph as exc:
        raise HTTPException(503, str(exc)) from exc
    return Response(svg, media_type="image/svg+xml", headers={"cache-control": "no-store"})


class _NoGraph(Exception):
    """Why the run's graph cannot be drawn here (the message says it to the user)."""


def _draw(run: RunInfo, summaries: list[TaskSummary]) -> bytes:
    """The run's graph as SVG; :class:`_NoGraph` without the graphviz package or the
    `dot` program, or when `dot` fails."""
    from flowcore.runs.graph import run_graph

    try:
        graph = run_graph(run.structure, summaries, web=True)
    except MissingExtraError as exc:
        raise _NoGraph(f"No graph: {exc}") from exc
    import graphviz  # there, since run_graph imported it

    try:
        svg: bytes = graph.pipe(format="svg")
    except graphviz.ExecutableNotFound as exc:
        raise _NoGraph(
            "No graph: Graphviz's `dot` program is needed to draw it and was not found on "
            "PATH (apt-get install graphviz, brew install graphviz)"
        ) from exc
    except (graphviz.CalledProcessError, OSError) as exc:
        raise _NoGraph(f"No graph: Graphviz's `dot` program failed to draw it ({exc})") from exc
    return svg


def _graph_markup(run: RunInfo, summaries: list[TaskSummary]) -> tuple[Markup | None, str | None]:
    """The graph as inline SVG, or why there is none."""
    try:
        svg = _draw(run, summaries).decode("utf-8")
    except _NoGraph as exc:
        return None, str(exc)
    start = svg.find("<svg")
    if start < 0 or not _plain_svg(svg[start:]):
        return None, "The graph could not be drawn safely."
    # Graphviz's own output: every name in it is XML-escaped text, and _plain_svg checked
    # that it holds no script, event handler or outside link.
    return Markup(svg[start:]), None  # noqa: S704


_SVG_TAGS = frozenset({"svg", "g", "title", "polygon", "ellipse", "path", "text", "a", "polyline"})


def _plain_svg(svg: str) -> bool:
    """Whether ``svg`` holds only the drawing elements Graphviz writes, no event
    attribute, and links only within the page (``#...``)."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError:
        return False
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] not in _SVG_TAGS:
            return False
        for name, value in element.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on") or (local == "href" and not value.startswith("#")):
                return False
    return True


# -- a task of a run -------------------------------------------------------------------------


def task_detail(request: Request) -> dict[str, Any]:
    """``/runs/<id>/tasks/<slug>``: a task's row, its history and log lines, and for a
    mapped task its children (``child_state`` filters them; ``offset``); with
    ``map_index``, the history and log lines of that child."""
    store = _store(request)
    run = _run(store, request.path_params["run_id"])
    slug = request.path_params["slug"]
    tasks = views.task_rows(run, store.task_summaries(run.run_id))
    rows = [row for row in tasks if row["slug"] == slug]
    if not rows:
        raise HTTPException(404, f"Run {run.run_id} has no task {slug!r}")
    query = request.query_params
    map_index = _int(query, "map_index", -1, -1)
    child_state = query.get("child_state") or None
    offset = _int(query, "offset", 0, 0)
    counts = rows[0]["children"]
    chosen = store.children(run.run_id, slug, child_state, offset, CHILDREN_SHOWN)
    child = _child(store, run, rows[0], map_index) if map_index >= 0 else None
    lines = store.logs(
        run.run_id, slug, TASK_LOG_LINES + 1, map_index=map_index if map_index >= 0 else None
    )
    logs = [views.log_json(line) for line in lines]
    return {
        "run": views.run_json(run),
        "task": rows[0],
        "map_index": map_index,
        "child": views.child_json(child, run.run_id) if child else None,
        "history": [
            views.transition_json(t) for t in store.transitions(run.run_id, slug, map_index)
        ],
        "children": [views.child_json(r, run.run_id) for r in chosen],
        "children_shown": CHILDREN_SHOWN,
        "children_total": counts.get(child_state, 0) if child_state else sum(counts.values()),
        "child_state": child_state,
        "offset": offset,
        "logs": logs[-TASK_LOG_LINES:],
        "logs_cut": len(logs) > TASK_LOG_LINES,  # older lines are not shown
        "log_lines_shown": TASK_LOG_LINES,
    }


def _child(store: RunStore, run: RunInfo, task: dict[str, Any], map_index: int) -> TaskRunInfo:
    """Child ``map_index`` of the mapped task ``task`` (a task row); 404 if it has none."""
    name = f"Task {task['slug']!r} of run {run.run_id}"
    if not task["mapped"]:
        raise HTTPException(404, f"{name} is not mapped: it has no child {map_index}")
    found = store.task_runs(run.run_id, task["slug"], map_index)
    if not found:
        raise HTTPException(
            404, f"{name} has no child {map_index} recorded ({task['total']} children)"
        )
    return found[0]


# -- resuming --------------------------------------------------------------------------------


async def resume(request: Request) -> Response:
    """``POST /runs/<id>/resume``: start ``flowcore resume`` on a failed, crashed or
    cancelled run, then show the job."""
    await read_form(request)

    def start() -> str:
        store = _store(request)
        run = _run(store, request.path_params["run_id"])
        if not views.ended_badly(run.state):
            raise HTTPException(
                409,
                f"Run {run.run_id} is {run.state}: only a failed, crashed or cancelled run "
                "can be resumed",
            )
        if not run.source:
            raise HTTPException(
                409,
                f"Run {run.run_id} did not record the file its flow came from; resume it from "
                f"Python with flow.run(resume={run.run_id!r})",
            )
        job = request.app.state.jobs.start(store, run)
        return str(job.id)

    job_id = await run_in_threadpool(start)
    return RedirectResponse(f"/resumes/{job_id}", 303)


def resume_job(request: Request) -> dict[str, Any]:
    """``/resumes/<job>``: a resume job's status and output, and its new run once known."""
    job = request.app.state.jobs.get(request.path_params["job"])
    if job is None:
        raise HTTPException(404, "No such resume job (jobs are kept while the UI runs)")
    data: dict[str, Any] = job.to_dict()
    data["run_url"] = views.run_url(job.run_id)
    data["new_run_url"] = None if data["new_run_id"] is None else views.run_url(data["new_run_id"])
    return data


# -- helpers ---------------------------------------------------------------------------------


def _store(request: Request) -> RunStore:
    store: RunStore = request.app.state.store
    return store


def _run(store: RunStore, run_id: str) -> RunInfo:
    try:
        found = store.get_run(run_id)
    except RunStoreError as exc:
        if "ambiguous" in str(exc):
            raise HTTPException(400, str(exc)) from exc
        raise
    if found is None:
        raise HTTPException(404, f"No run {run_id!r} in {store.display}")
    return found


_LARGEST = 1_000_000_000  # any count, offset, page or index: far past what a store holds,
# and small enough that an offset computed from it (page * per_page) fits SQLite's integers


def _int(query: Any, name: str, default: int, low: int, high: int = _LARGEST) -> int:
    """Query parameter ``name`` as an int in ``[low, high]`` (400 otherwise)."""
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be from {low} to {high}, not {value}")
    return value
