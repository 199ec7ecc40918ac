"""The caches page: the entries of the cache store, deleting one, garbage collection.

The store is the one the UI was started with (``flowcore ui --cache-store``), else
config ``caching.store``, else ``<home_dir>/storage``, as for ``flowcore cache``. Entries
are listed by task, then flow, then age, with their size and expiry
(:class:`flowcore.caching.Cache`). Deleting takes a key and a record id (one entry);
gc takes the limits of ``flowcore cache gc`` (``max_age`` 7d, ``max_size`` 1GB,
``max_entries``), all optional. After a POST the browser is sent back to ``/caches``
with a notice id (``?notice=``); the notice's text stays on the server, so a link cannot
make the page say something else.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from flowcore.caching.cache import Cache, CacheEntry
from flowcore.exceptions import ResultStorageError
from flowcore.ui import views
from flowcore.ui.security import read_form
from flowcore.utilities.units import format_size, parse_duration, parse_size

__all__ = ["caches", "delete", "gc", "open_cache"]

MAX_NOTICES = 100


def open_cache(spec: str | None) -> tuple[Cache | None, str, str | None]:
    """The cache at ``spec`` (None: the configured or default store), its name, and why
    it cannot be opened (then the cache is None)."""
    from flowcore import configuration

    if spec is None:
        configured = configuration.config.get_path("caching.store")
        if configured is None:
            where = os.path.join(
                os.path.expanduser(str(configuration.config["home_dir"])), "storage"
            )
            if not os.path.isdir(where):
                return None, where, "No cache entries yet: the default cache store does not exist."
            return Cache(None), where, None
        spec = str(configured)
    if spec == "memory":
        return (
            None,
            spec,
            "The cache store is 'memory': it lives only in the process that ran the flow.",
        )
    if spec.startswith(("s3://", "gs://")):
        return Cache(spec), spec.rstrip("/"), None
    path = os.path.abspath(os.path.expanduser(spec))
    if not os.path.isdir(path):
        return None, path, f"No cache store at {path}: no such directory."
    return Cache(path), path, None


def caches(request: Request) -> dict[str, Any]:
    """``/caches``: the entries, filtered by ``task`` and ``flow``."""
    cache, where, problem = open_cache(request.app.state.cache_store)
    task = request.query_params.get("task") or None
    flow = request.query_params.get("flow") or None
    now = datetime.now(timezone.utc)
    entries = []
    if cache is not None:
        try:
            entries = cache.entries(task=task, flow=flow)
        except ResultStorageError as exc:
            problem = f"The cache store cannot be read: {exc}"
    entries.sort(key=lambda e: (e.record.task, e.record.flow or "", e.record.created))
    notice = request.app.state.notices.get(request.query_params.get("notice", ""))
    shown = [views.cache_json(entry, now) for entry in entries]
    return {
        "store": where,
        "problem": problem,
        "task": task,
        "flow": flow,
        "entries": shown,
        "total_bytes": sum(e["size"] or 0 for e in shown),
        "damaged": sum(e["problem"] is not None for e in shown),
        "values_elsewhere": sorted({e["value_elsewhere"] for e in shown if e["value_elsewhere"]}),
        "notice": notice,
    }


async def delete(request: Request) -> Response:
    """``POST /caches/delete``: remove the entry ``key`` / ``record_id``."""
    form = await read_form(request)
    key, record_id = form.get("key", ""), form.get("record_id", "")
    if not key:
        raise HTTPException(400, "Say which entry to delete: key (and record_id)")

    def remove() -> str:
        cache = _cache(request)
        try:  # as `flowcore cache rm` removes: the value goes with its record
            removed = cache.delete(key=key, record_id=record_id)
        except ValueError as exc:
            return _kept_apart(
                request,
                exc,
                f"flowcore cache rm {key}",
                cache.entries(key=key, record_id=record_id),
            )
        if not removed:
            raise HTTPException(
                404, f"No cache entry {key!r} / {record_id!r} (it may be gone already)"
            )
        entry = removed[0]
        return f"Deleted the entry of {entry.record.task!r} with key {key} ({format_size(entry.size)})."

    return _back(request, await run_in_threadpool(remove))


async def gc(request: Request) -> Response:
    """``POST /caches/gc``: ``Cache.gc`` with the form's limits."""
    form = await read_form(request)
    try:
        max_age = parse_duration(form["max_age"]) if form.get("max_age") else None
        max_bytes = parse_size(form["max_size"]) if form.get("max_size") else None
        max_entries = int(form["max_entries"]) if form.get("max_entries") else None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if max_entries is not None and max_entries < 0:
        raise HTTPException(400, "max_entries must be 0 or more")

    def collect() -> str:
        cache = _cache(request)
        try:
            report = cache.gc(max_age=max_age, max_bytes=max_bytes, max_entries=max_entries)
        except ValueError as exc:
            return _kept_apart(request, exc, "flowcore cache gc", cache.entries())
        return (
            f"Garbage collection removed {len(report.entries)} entries ({format_size(report.bytes_freed)}), "
            f"{len(report.orphans)} orphaned values and {report.temporaries} temporary files."
        )

    return _back(request, await run_in_threadpool(collect))


def _cache(request: Request) -> Cache:
    cache, _, problem = open_cache(request.app.state.cache_store)
    if cache is None:
        raise HTTPException(409, problem or "No cache store")
    return cache


def _kept_apart(
    request: Request, refusal: ValueError, command: str, apart: list[CacheEntry]
) -> str:
    """The notice for entries ``Cache`` refused to remove (``refusal``): ``apart`` keep
    their values apart from their records (key_storage), in a store the UI was not
    given. It says what ``flowcore cache`` prints, and the command that removes them."""
    _, where, _ = open_cache(request.app.state.cache_store)
    values = sorted({e.elsewhere for e in apart if e.elsewhere is not None})
    return (
        f"{refusal} The UI manages only the records' store it was given (flowcore ui "
        f"--cache-store); remove them with: {command} --store {where} --values "
        f"{values[0] if values else 'STORE'}"
    )


def _back(request: Request, notice: str) -> Response:
    notices: dict[str, str] = request.app.state.notices
    while len(notices) >= MAX_NOTICES:
        notices.pop(next(iter(notices)))
    notice_id = secrets.token_hex(8)
    notices[notice_id] = notice
    return RedirectResponse(f"/caches?notice={notice_id}", 303)
