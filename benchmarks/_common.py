"""Shared pieces of the workload modules: timing, RSS, engine import, logging redirect.

This module (and every ``w*.py`` module) is imported both by the flowcore interpreter and by
the Prefect 1.4.1 interpreter given with ``--prefect-python``, so it only imports the
standard library at module level; ``dask``, ``distributed``, ``joblib`` and the engine under
test are imported inside the functions that need them.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = [
    "ENGINES",
    "Context",
    "NotAvailable",
    "Measurement",
    "check",
    "import_engine",
    "inc",
    "peak_rss_mib",
    "silence_engine_logging",
    "timed",
]

#: Systems whose workload code is the same function with ``flowcore`` or ``prefect`` imports.
ENGINES = ("flowcore", "prefect")

_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - kept open for the life of the process

#: When set (by ``benchmarks.hotspots``), enabled around each timed repetition only.
PROFILER: Any = None


class NotAvailable(Exception):
    """Raised by a system's workload function when that system cannot run the workload.

    The message is shown in the table instead of a number (for example
    ``n/a (needs LocalResult)``); nothing is faked.
    """


@dataclass
class Context:
    """What the runner hands a workload function in the worker process."""

    n: int
    repeat: int
    warmup: int
    workdir: str | None = None
    #: "measure" normally; workloads measured in a new process (W5) first get "setup".
    phase: str = "measure"


@dataclass
class Measurement:
    """Wall-clock seconds of each timed repetition, plus notes for the table."""

    times: list[float]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def inc(x: int) -> int:
    """The trivial task body of every workload."""
    return x + 1


def check(condition: bool, message: str) -> None:
    """Fail the measurement loudly if a run did not do what the workload says."""
    if not condition:
        raise AssertionError(f"benchmark sanity check failed: {message}")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def silence_engine_logging(name: str) -> None:
    """Keep the engine's default logging configuration but send its stream to /dev/null.

    Records are still created, filtered and formatted exactly as with the default
    configuration (level INFO for both engines); only the final write goes to /dev/null, so
    the benchmark pays the full cost of "default logging" without flooding the terminal.
    """
    logger = logging.getLogger(name)
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setStream(_DEVNULL)


def import_engine(name: str) -> ModuleType:
    """Import ``flowcore`` or ``prefect`` with its log stream redirected to /dev/null."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}")
    module = importlib.import_module(name)
    silence_engine_logging(name)
    return module


def engine_attr(name: str, module_path: str, attr: str, reason: str) -> Any:
    """``<name>.<module_path>.<attr>``, or ``NotAvailable(reason)`` if the engine lacks it."""
    try:
        module = importlib.import_module(f"{name}.{module_path}")
    except ImportError as exc:
        raise NotAvailable(reason) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise NotAvailable(reason) from exc


def timed(
    run: Callable[[], Any],
    verify: Callable[[Any], None],
    ctx: Context,
    before_each: Callable[[], None] | None = None,
) -> list[float]:
    """Run ``ctx.warmup`` untimed then ``ctx.repeat`` timed repetitions of ``run``.

    ``verify`` checks each repetition's return value outside the timed section;
    ``before_each`` resets per-run state outside it as well. A full garbage collection
    precedes each repetition so one repetition's garbage is not billed to the next.
    """
    times = []
    for index in range(ctx.warmup + ctx.repeat):
        if before_each is not None:
            before_each()
        gc.collect()
        profiling = PROFILER is not None and index >= ctx.warmup
        if profiling:
            PROFILER.enable()
        start = time.perf_counter()
        value = run()
        elapsed = time.perf_counter() - start
        if profiling:
            PROFILER.disable()
        verify(value)
        del value
        if index >= ctx.warmup:
            times.append(elapsed)
    return times
