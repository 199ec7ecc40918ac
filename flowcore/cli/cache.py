"""``flowcore cache``: list, inspect, remove and garbage-collect cache entries, and explain.

::

    flowcore cache ls   [--flow F] [--task T] [--older-than 7d] [--larger-than 10MB] [--expired] [--json]
    flowcore cache show KEY [--json]
    flowcore cache rm   [KEY] [--flow F] [--task T] [--older-than 7d] [--expired] [--all]
                        [--dry-run] [--yes] [--json]
    flowcore cache gc   [--max-age 30d] [--max-size 1GB] [--max-entries N] [--dry-run] [--json]
    flowcore cache explain FILE.py[:FLOW] [--param NAME=VALUE ...] [--json]

Every verb takes ``--store DIR|s3://BUCKET/PREFIX|gs://BUCKET/PREFIX``; without it, the
store is config ``caching.store``, else ``<home_dir>/storage`` (where cache policies keep
values by default). ``ls``, ``show``, ``rm`` and ``gc`` also take ``--values STORE``: for
records kept apart from their values (a policy's ``key_storage``), ``--store`` names the
records and ``--values`` the values. Each verb is a thin layer over :class:`flowcore.caching.cache.Cache`:
it opens the store (:func:`_open`), asks ``Cache`` once, and prints the answer as a table
or, with ``--json``, as the ``to_dict()`` of what ``Cache`` returned.

``explain`` loads the flow file and asks :func:`flowcore.caching.explain.explain_flow`
whether each task's next run would be a hit, and why; nothing runs. Without ``--store`` it
looks where the flow's run would (``Flow(cache_store=)``, ``caching.store``, the defaults).

A KEY may be given by a unique prefix (policy keys are 32 hex digits). ``rm`` with a KEY
removes that key's entries; ``rm`` with filters or ``--all`` lists what matches and asks
first (``--yes`` does not ask; without a terminal to ask on, ``--yes`` is required).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import click

from flowcore.caching.cache import Cache, CacheEntry, GcReport
from flowcore.cli import CliError
from flowcore.cli.output import echo_json, echo_table
from flowcore.cli.params import (
    checked_params,
    format_duration,
    format_size,
    to_duration,
    to_params,
    to_size,
)
from flowcore.exceptions import ResultStorageError

__all__ = ["cache"]

_F = TypeVar("_F", bound=Callable[..., Any])
_STORES = "a directory, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"


@click.group()
def cache() -> None:
    """List, inspect, remove and garbage-collect cache entries."""


# -- shared options --------------------------------------------------------------------


def _store_option(command: _F) -> _F:
    return click.option(
        "--store", metavar="STORE",
        help=f"The cache store: {_STORES}. Default: config caching.store, else <home_dir>/storage.",
    )(command)  # fmt: skip


def _values_option(command: _F) -> _F:
    return click.option(
        "--values", metavar="STORE",
        help="Where the values are, when the records in --store are kept apart from them "
        "(a cache policy's key_storage): as --store. Default: beside the records.",
    )(command)  # fmt: skip


def _filter_options(command: _F) -> _F:
    for option in reversed([
        click.option("--flow", metavar="FLOW", help="Only entries written by this flow."),
        click.option("--task", metavar="TASK", help="Only entries of this task."),
        click.option("--older-than", callback=to_duration, metavar="AGE", help="Only entries older than AGE (90s, 15m, 12h, 7d, 2w)."),
        click.option("--expired", is_flag=True, help="Only expired entries."),
    ]):  # fmt: skip
        command = option(command)
    return command


def _json_option(command: _F) -> _F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")(
        command
    )


# -- verbs -----------------------------------------------------------------------------


@cache.command("ls")
@_store_option
@_values_option
@_filter_options
@click.option(
    "--larger-than",
    callback=to_size,
    metavar="SIZE",
    help="Only values larger than SIZE (500, 10KB, 10MB, 1GiB).",
)
@_json_option
def ls(
    store: str | None, values: str | None, flow: str | None, task: str | None, older_than: timedelta | None,
    expired: bool, larger_than: int | None, as_json: bool,
) -> None:  # fmt: skip
    """List cache entries, oldest first."""
    opened, where = _open(store, values)
    with _storage_errors():
        entries = opened.entries(
            task=task, flow=flow, older_than=older_than, expired=expired or None
        )
    if larger_than is not None:
        entries = [e for e in entries if e.size is not None and e.size > larger_than]
    if as_json:
        echo_json([e.to_dict() for e in entries])
    elif not entries:
        match = " match" if _filtered(flow, task, older_than, expired, larger_than) else ""
        click.echo(f"No cache entries in {where}{match}.")
    else:
        _echo_entries(entries, f"{_count(entries)}, {format_size(_bytes(entries))} in {where}")
        _echo_problems(entries, store)
        _echo_elsewhere(entries, store)


@cache.command("show")
@click.argument("key")
@_store_option
@_values_option
@_json_option
def show(key: str, store: str | None, values: str | None, as_json: bool) -> None:
    """Show the entries of KEY (or of the one key that starts with KEY)."""
    opened, where = _open(store, values)
    with _storage_errors():
        entries = _find(opened, key, where, store)
    if as_json:
        echo_json([_details(e) for e in entries])
        return
    now = _now()
    for number, entry in enumerate(entries):
        if number:
            click.echo()
        _echo_details(entry, now)
    _echo_problems(entries, store)
    _echo_elsewhere(entries, store)


@cache.command("explain")
@click.argument("flow_file", metavar="FILE.py[:FLOW]")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    callback=to_params,
    metavar="NAME=VALUE",
    help="A parameter value (JSON, else text); repeat for more.",
)
@click.option(
    "--store",
    metavar="STORE",
    help=f"The cache store: {_STORES}. Default: the one the flow's run would use.",
)
@_json_option
def explain(flow_file: str, params: dict[str, Any], store: str | None, as_json: bool) -> None:
    """Say, per task of the flow in FILE.py, whether its next run would be a cache hit or a
    miss, and why, without running any task."""
    from flowcore.caching.explain import ANSWERS, explain_flow
    from flowcore.cli.loading import load_flow
    from flowcore.engine.flow_runner import FlowRunner

    flow = load_flow(flow_file).flow
    chosen, where = _open(store) if store is not None else (None, None)
    _, _, context, task_contexts = FlowRunner(flow=flow).initialize_run(
        None, {}, {}, {}, checked_params(flow, params)
    )
    with _storage_errors():
        explained = explain_flow(
            flow, context, task_contexts, None if chosen is None else chosen.store
        )
    if as_json:
        echo_json([e.to_dict() for e in explained])
        return
    plurals = {"hit": "hits", "miss": "misses"}
    counts = [
        f"{n} {plurals.get(a, a) if n > 1 else a}"
        for a in ANSWERS
        if (n := sum(e.answer == a for e in explained))
    ]
    caption = (
        f"Flow {flow.name!r}: "
        + ", ".join(counts)
        + (f" in {where}" if where else "")
        + "; nothing was run."
    )
    echo_table(
        ("task", "answer", "reason"), [(e.task, e.answer, e.reason) for e in explained], caption
    )


@cache.command("rm")
@click.argument("key", required=False)
@_store_option
@_values_option
@_filter_options
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Remove every entry (needed when no KEY or filter is given).",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask before removing the entries of filters or --all."
)
@_json_option
def rm(
    key: str | None, store: str | None, values: str | None, flow: str | None, task: str | None,
    older_than: timedelta | None, expired: bool, everything: bool, dry_run: bool, yes: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Remove the entries of KEY, or those the filters match, or (--all) every entry.

    A value is removed with its record, unless another record still uses it.
    """
    filtered = _filtered(flow, task, older_than, expired)
    if key is None and not filtered and not everything:
        raise CliError(
            "cache rm needs a KEY or a filter (--flow, --task, --older-than, --expired); "
            "pass --all to remove every entry"
        )
    if everything and (key is not None or filtered):
        raise CliError(
            "--all removes every entry: give it alone, or drop it to remove by KEY or filters"
        )
    opened, where = _open(store, values)
    choice: dict[str, Any] = {
        "task": task,
        "flow": flow,
        "older_than": older_than,
        "expired": expired or None,
    }
    asked = False
    with _storage_errors(), _values_elsewhere():
        if key is not None:
            choice["key"] = _find(opened, key, where, store)[0].key
        planned = removed = opened.delete(**choice, dry_run=True)
        if removed and not dry_run:
            asked = key is None and not yes
            if asked:
                _confirm(removed, where)
            removed = opened.delete(**choice)
    done = f"{_count(removed)} ({format_size(_bytes(removed))}) from {where}"
    if as_json:
        echo_json(
            {
                "dry_run": dry_run,
                "entries": [e.to_dict() for e in removed],
                "bytes_freed": _bytes(removed),
            }
        )
    elif not removed:
        click.echo(f"Nothing to remove in {where}.")
    elif dry_run:
        _echo_entries(removed, f"Would remove {done}; nothing was removed (--dry-run).")
    elif asked:  # the table was shown with the question
        click.echo(f"Removed {done}.")
    else:
        _echo_entries(removed, f"Removed {done}.")
    _fail_if_kept(planned, removed, dry_run)


@cache.command("gc")
@_store_option
@_values_option
@click.option(
    "--max-age",
    callback=to_duration,
    metavar="AGE",
    help="Also remove entries older than AGE (7d, 12h, 2w).",
)
@click.option(
    "--max-size",
    callback=to_size,
    metavar="SIZE",
    help="Then remove the oldest entries until their values take at most SIZE (1GB, 500MiB).",
)
@click.option(
    "--max-entries",
    type=click.IntRange(min=0),
    metavar="N",
    help="Then remove the oldest entries until at most N remain.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@_json_option
def gc(
    store: str | None, values: str | None, max_age: timedelta | None, max_size: int | None, max_entries: int | None,
    dry_run: bool, as_json: bool,
) -> None:  # fmt: skip
    """Remove expired entries, entries beyond the given limits, values no record uses
    (older than an hour) and leftovers of interrupted writes."""
    opened, where = _open(store, values)
    with _storage_errors(), _values_elsewhere():
        report = opened.gc(
            max_age=max_age, max_bytes=max_size, max_entries=max_entries, dry_run=dry_run
        )
    if as_json:
        echo_json(report.to_dict())
    elif not (report.entries or report.orphans or report.temporaries):
        click.echo(f"Nothing to remove in {where}.")
    else:
        _echo_gc(report, where)
    _fail_if_kept(report.entries + report.not_removed, report.entries, dry_run)


def _echo_gc(report: GcReport, where: str) -> None:
    if report.entries:
        _echo_entries(report.entries)
    parts = [
        f"{_count(report.entries)} ({format_size(report.bytes_freed)})" if report.entries else "",
        _count(report.orphans, "orphaned value", "orphaned values") if report.orphans else "",
        _count(range(report.temporaries), "temporary file", "temporary files") if report.temporaries else "",
    ]  # fmt: skip
    what = _and([part for part in parts if part])
    if report.dry_run:
        click.echo(f"Would remove {what} from {where}; nothing was removed (--dry-run).")
    else:
        click.echo(f"Removed {what} from {where}.")


# -- opening the store -----------------------------------------------------------------


def _open(spec: str | None, values: str | None = None) -> tuple[Cache, str]:
    """The cache at ``spec`` (``--store``; None: the configured or default store), with
    its values at ``values`` (``--values``; None: beside the records), and its name for
    messages. A local store must be an existing directory, except the default."""
    opened, where = _open_one(spec)
    if values is None:
        return opened, where
    chosen, values_where = _open_one(values, "--values")
    try:
        return Cache(opened.store, values=chosen.store), f"{where} (values in {values_where})"
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _open_one(spec: str | None, option: str = "--store") -> tuple[Cache, str]:
    """The cache at ``spec`` (``option``'s value) and its name (see ``_open``)."""
    from flowcore import configuration

    source = option
    if spec is None:
        configured = configuration.config.get_path("caching.store")
        if configured is None:
            default = os.path.join(
                os.path.expanduser(str(configuration.config["home_dir"])), "storage"
            )
            return Cache(None), default
        spec, source = str(configured), "config caching.store"
    if spec == "memory":
        raise CliError(
            f"{source} is 'memory': a memory cache lives only in the process that ran the flow; "
            f"pass --store with {_STORES}"
        )
    if spec.startswith(("s3://", "gs://")):
        try:
            return Cache(spec), spec.rstrip("/")
        except ValueError as exc:
            raise CliError(f"{exc} ({source}); write it as {spec[:5]}BUCKET/PREFIX") from None
    if "://" in spec:
        raise CliError(f"{source} {spec!r} is not a cache store; use {_STORES}")
    path = os.path.abspath(os.path.expanduser(spec))
    if not os.path.isdir(path):
        problem = "not a directory" if os.path.exists(path) else "no such directory"
        raise CliError(
            f"no cache store at {path!r} ({source}): {problem}; give the directory a flow's "
            "cache_store names, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"
        )
    return Cache(path), path


@contextmanager
def _values_elsewhere() -> Iterator[None]:
    """Removing records whose values are in a store not given (``Cache`` refuses) as one
    line naming ``--values``."""
    try:
        yield
    except ValueError as exc:
        raise CliError(str(exc)) from None


@contextmanager
def _storage_errors() -> Iterator[None]:
    """A storage failure (no such bucket, no credentials) as one line with a hint."""
    try:
        yield
    except ResultStorageError as exc:
        raise CliError(f"{exc} (check --store, and that these credentials can read it)") from exc


def _find(opened: Cache, key: str, where: str, store: str | None) -> list[CacheEntry]:
    """The entries of ``key``, or of the one key it starts."""
    entries = opened.show(key)
    if entries:
        return entries
    keys = sorted({e.key for e in opened.entries() if e.key.startswith(key)})
    if len(keys) == 1:
        return opened.show(keys[0])
    if keys:
        shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        raise CliError(f"{key!r} starts {len(keys)} keys ({shown}); give more of the key")
    listing = "flowcore cache ls" + ("" if store is None else f" --store {store}")
    raise CliError(f"no cache entry has key {key!r} in {where}; '{listing}' lists the keys")


def _fail_if_kept(planned: list[CacheEntry], removed: list[CacheEntry], dry_run: bool) -> None:
    """Exit 1, naming them, when entries that were to be removed are still there."""
    gone = {id(e) for e in removed} | {e.location for e in removed if e.location}
    kept = [e for e in planned if id(e) not in gone and e.location not in gone]
    if kept and not dry_run:
        names = ", ".join(e.location or e.key for e in kept)
        raise CliError(
            f"{_count(kept)} could not be removed: {names}; nothing is removed through a "
            "link leading out of the store: remove such a file by hand"
        )


def _confirm(entries: list[CacheEntry], where: str) -> None:
    """Ask on the terminal (stderr, so ``--json`` output stays clean) before removing."""
    what = f"{_count(entries)} ({format_size(_bytes(entries))})"
    if not sys.stdin.isatty():
        raise CliError(
            f"cache rm would remove {what} from {where}; pass --yes to remove them (--dry-run lists them)"
        )
    _echo_entries(entries, err=True)
    click.confirm(f"Remove {what} from {where}?", abort=True, err=True)


# -- printing --------------------------------------------------------------------------


def _echo_entries(entries: list[CacheEntry], caption: str | None = None, err: bool = False) -> None:
    now = _now()
    rows = [
        (e.key, e.record.task or "-", e.record.flow or "-", format_duration(e.age(now)), _expires(e, now), format_size(e.size))
        for e in entries
    ]  # fmt: skip
    echo_table(
        ("key", "task", "flow", "age", "expires", "size"),
        rows,
        caption,
        right=("age", "size"),
        err=err,
    )


def _echo_problems(entries: list[CacheEntry], store: str | None) -> None:
    """What is wrong with the damaged entries, and how to remove them."""
    damaged = [e for e in entries if e.problem is not None]
    if not damaged:
        return
    gc = "flowcore cache gc" + ("" if store is None else f" --store {store}")
    click.echo(
        f"{_count(damaged, 'entry is', 'entries are')} damaged and never used; "
        f"'{gc}' removes {'it' if len(damaged) == 1 else 'them'}:"
    )
    for entry in damaged:
        click.echo(f"  {entry.location or entry.key} {entry.problem}")


def _echo_elsewhere(entries: list[CacheEntry], store: str | None) -> None:
    """Where the values of entries kept apart from their records are, and how to see them."""
    apart = sorted({e.elsewhere for e in entries if e.elsewhere is not None})
    if not apart:
        return
    count = len([e for e in entries if e.elsewhere is not None])
    given = "" if store is None else f" --store {store}"
    click.echo(
        f"{_count(range(count), 'entry keeps its value', 'entries keep their values')} "
        f"apart from {'its record' if count == 1 else 'their records'} (key_storage), in "
        f"{', '.join(apart)}; sizes are unknown here. "
        f"'flowcore cache ls{given} --values {apart[0]}' checks them; rm and gc need --values."
    )


def _expires(entry: CacheEntry, now: datetime) -> str:
    if entry.problem is not None:
        return "damaged"
    expires = entry.record.expires
    if expires is None:
        return "never"
    if expires <= now:
        return f"expired {format_duration(now - expires)} ago"
    return f"in {format_duration(expires - now)}"


def _details(entry: CacheEntry) -> dict[str, Any]:
    """Everything known about an entry, JSON-ready (``show --json``)."""
    record = entry.record
    return {
        **entry.to_dict(),
        "serializer": record.serializer,
        "value_digest": record.value_digest,
        "key_parts": record.key_parts,
        "inputs": record.inputs,
        "parameters": record.parameters,
        "message": record.message,
        "value_store": record.value_store,
    }


def _echo_details(entry: CacheEntry, now: datetime) -> None:
    record = entry.record
    created = (
        f"{record.created.isoformat(timespec='seconds')} ({format_duration(entry.age(now))} ago)"
    )
    expires = (
        _expires(entry, now)
        if entry.problem is not None
        else "never"
        if record.expires is None
        else f"{record.expires.isoformat(timespec='seconds')} ({_expires(entry, now)})"
    )
    fields: list[tuple[str, Any]] = [
        ("key", record.key),
        *([("problem", entry.problem)] if entry.problem is not None else []),
        ("stored at", entry.location),
        ("record", record.record_id),
        ("task", record.task or None),
        ("flow", record.flow),
        ("flow run", record.flow_run_id),
        ("created", created),
        ("expires", expires),
        ("value", record.value_location),
        *([("value store", record.value_store)] if record.value_store is not None else []),
        ("size", format_size(entry.size)),
        ("serializer", record.serializer),
        ("digest", record.value_digest),
        ("key parts", record.key_parts),
        ("inputs", record.inputs),
        ("parameters", record.parameters),
        ("message", record.message),
    ]
    for name, value in fields:
        lines = [f"{k}: {v}" for k, v in value.items()] if isinstance(value, dict) else [value]
        for number, line in enumerate(lines or ["-"]):
            click.echo(f"{name if number == 0 else '':<12}{'-' if line is None else line}")


def _count(items: Any, one: str = "entry", many: str = "entries") -> str:
    return f"{len(items)} {one if len(items) == 1 else many}"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _bytes(entries: list[CacheEntry]) -> int:
    return sum(e.size or 0 for e in entries)


def _filtered(*filters: Any) -> bool:
    return any(f is not None and f is not False for f in filters)


def _now() -> datetime:
    return datetime.now(timezone.utc)
