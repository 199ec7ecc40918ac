"""The UI's ASGI application: :func:`create_app` assembles it.

::

    create_app(store, cache_store=None, token=None, loopback_only=True, store_source=None)

    GET  /                               runs (filters: flow, state; page, per_page)
    GET  /runs/<id>                      a run: graph, task table, history, logs
    GET  /runs/<id>/graph.svg            its graph
    GET  /runs/<id>/tasks/<slug>         a task of the run: history, children, logs
    POST /runs/<id>/resume               start `flowcore resume <id>` -> /resumes/<job>
    GET  /resumes/<job>                  a resume job: its output, then the new run
    GET  /caches                         cache entries (filters: task, flow)
    POST /caches/delete                  delete one entry (key, record_id)
    POST /caches/gc                      garbage-collect (max_age, max_size, max_entries)
    GET  /api/...                        the same pages as JSON (/api/runs, /api/runs/<id>,
                                         /api/runs/<id>/tasks/<slug>, /api/resumes/<job>,
                                         /api/caches)
    GET  /static/...                     ui.css, ui.js

Each page is built once as plain data by a function of :mod:`flowcore.ui.runs_pages` or
:mod:`flowcore.ui.cache_pages`; the page renders it with a Jinja2 template
(autoescaping on), ``/api/`` returns it as JSON. Store reads run on Starlette's thread
pool. An unknown run, task or job is 404 (JSON under ``/api/``); a store that cannot be
read is 503 with the store's message. :class:`flowcore.ui.security.Guard` wraps it all.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

import flowcore
from flowcore.runs.store import RunStore, RunStoreError
from flowcore.ui import views
from flowcore.ui.jobs import Jobs
from flowcore.ui.security import Guard, new_csrf_token

__all__ = ["create_app", "render"]

Builder = Callable[[Request], dict[str, Any]]


class _Anything(PathConvertor):
    """A path parameter that is any text, slashes, tabs and newlines too: a task's slug
    is its name, which may hold them (Starlette's ``path`` stops at a newline)."""

    regex = "[\\s\\S]*"


register_url_convertor("anything", _Anything())


def create_app(
    store: RunStore,
    cache_store: str | None = None,
    token: str | None = None,
    loopback_only: bool = True,
    store_source: str | None = None,
) -> Starlette:
    """The UI over the run store ``store`` and the cache store ``cache_store`` (what
    ``flowcore cache --store`` takes; None: config ``caching.store``, else
    ``<home_dir>/storage``). ``token``: required on every request; ``loopback_only``:
    answer only requests addressed to a loopback name (see :mod:`flowcore.ui.security`);
    ``store_source``: where ``store`` was named (``"--store"``), for its error messages
    (None: the setting ``runs.store``)."""
    from flowcore.ui import cache_pages, runs_pages

    csrf = new_csrf_token()
    routes: list[BaseRoute] = [
        *_pair("/", "/api/runs", runs_pages.runs_list, "runs.html"),
        *_pair("/runs/{run_id}", "/api/runs/{run_id}", runs_pages.run_detail, "run.html"),
        Route("/runs/{run_id}/graph.svg", runs_pages.graph_svg, methods=["GET"]),
        *_pair(
            "/runs/{run_id}/tasks/{slug:anything}",
            "/api/runs/{run_id}/tasks/{slug:anything}",
            runs_pages.task_detail,
            "task.html",
        ),  # fmt: skip
        Route("/runs/{run_id}/resume", runs_pages.resume, methods=["POST"]),
        *_pair("/resumes/{job}", "/api/resumes/{job}", runs_pages.resume_job, "resume.html"),
        *_pair("/caches", "/api/caches", cache_pages.caches, "caches.html"),
        Route("/caches/delete", cache_pages.delete, methods=["POST"]),
        Route("/caches/gc", cache_pages.gc, methods=["POST"]),
        Mount(
            "/static",
            StaticFiles(directory=str(resources.files("flowcore.ui") / "static")),
            name="static",
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, loopback_only=loopback_only, csrf=csrf)],
        exception_handlers={HTTPException: _http_error, RunStoreError: _store_error},
    )
    app.state.store = store
    app.state.store_source = store_source
    app.state.cache_store = cache_store
    app.state.csrf = csrf
    app.state.jobs = Jobs()
    app.state.notices = {}
    app.state.templates = _templates()
    return app


def _pair(path: str, api_path: str, build: Builder, template: str) -> list[BaseRoute]:
    """A page and its JSON twin, both from ``build``."""

    async def page(request: Request) -> Response:
        data = await run_in_threadpool(build, request)
        return render(request, template, data)

    async def api(request: Request) -> Response:
        data = await run_in_threadpool(build, request)
        data.pop("page", None)  # what only the template needs
        return JSONResponse(data)

    return [Route(path, page, methods=["GET"]), Route(api_path, api, methods=["GET"])]


def render(
    request: Request, template: str, data: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """``template`` filled with ``data`` and what every page shows (the store, the CSRF
    token for its forms)."""
    env: jinja2.Environment = request.app.state.templates
    body = env.get_template(template).render(
        data=data,
        page=data.get("page", {}),
        store=request.app.state.store.display,
        csrf_token=request.app.state.csrf,
        version=flowcore.__version__,
        request_path=request.url.path,
    )
    return HTMLResponse(body, status, headers={"cache-control": "no-store"})


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flowcore.ui", "templates"),
        autoescape=True,  # every template is HTML: user text is escaped, never marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=views.format_time, seconds=views.format_seconds, age=views.format_age,
        size=views.format_bytes, color=_color,
    )  # fmt: skip
    env.globals["task_url"] = views.task_url
    env.globals["run_url"] = views.run_url
    return env


def _color(state: str | None) -> str:
    from flowcore.runs.graph import state_color

    return state_color(state)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)
    return render(
        request, "error.html", {"status": exc.status_code, "error": exc.detail}, exc.status_code
    )


async def _store_error(request: Request, exc: Exception) -> Response:
    """503 with the store's message, naming where the store was given."""
    from flowcore.runs.store import SETTING

    source: str | None = request.app.state.store_source
    message = str(exc) if source is None else str(exc).replace(SETTING, source)
    return await _http_error(request, HTTPException(503, message))
