"""W7: one task that fails once, ``max_retries=1``, ``retry_delay=0``.

Each system is timed twice, alternately: the failing-once run (the row's number) and the same run
without a failure (in the notes), so the retry pass's own cost is the difference.
"""

from __future__ import annotations

import importlib
import statistics
from dataclasses import replace
from datetime import timedelta
from typing import Any

from benchmarks._common import Context, Measurement, check, import_engine, timed

ID = "W7"
TITLE = "one task failing once, max_retries=1, retry_delay=0"
SIZES = {"small": 1, "default": 1}
SYSTEMS = ("flowcore", "prefect", "dask", "python")
REPEAT = {"default": 20, "prefect": 5}
WARMUP = {"default": 1}

_state = {"calls": 0, "fail": True}


def flaky(x: int) -> int:
    """``x + 1``, raising on the first call after a reset when failing is switched on."""
    _state["calls"] += 1
    if _state["fail"] and _state["calls"] == 1:
        raise ValueError("first attempt fails")
    return x + 1


def _reset(fail: bool) -> Any:
    def reset() -> None:
        _state["calls"] = 0
        _state["fail"] = fail

    return reset


def _both(run: Any, verify_value: Any, ctx: Context) -> Measurement:
    """Time ``run`` failing once, then not failing; return the first with the second noted."""

    def verify_failing(value: Any) -> None:
        verify_value(value)
        check(_state["calls"] == 2, f"{_state['calls']} attempts, expected 2")

    def verify_clean(value: Any) -> None:
        verify_value(value)
        check(_state["calls"] == 1, f"{_state['calls']} attempts, expected 1")

    # Alternating, one of each per round (after the warm-ups), so both see the same
    # machine: the run store's writer process starts with the first run and imports
    # SQLAlchemy on the other core for a while, and timing every failing run first
    # billed that to them.
    timed(run, verify_failing, replace(ctx, repeat=0), before_each=_reset(True))
    timed(run, verify_clean, replace(ctx, repeat=0), before_each=_reset(False))
    once = replace(ctx, repeat=1, warmup=0)
    failing: list[float] = []
    clean: list[float] = []
    for _ in range(ctx.repeat):
        failing += timed(run, verify_failing, once, before_each=_reset(True))
        clean += timed(run, verify_clean, once, before_each=_reset(False))
    base = statistics.median(clean)
    retry = statistics.median(failing) - base
    return Measurement(
        failing,
        note=f"without the failure {base * 1e3:.3g} ms; retry costs {retry * 1e3:.3g} ms",
        extra={"no_failure_times": clean},
    )


def run_engine(name: str, ctx: Context) -> Measurement:
    """The same code for ``flowcore`` and ``prefect``: only the module name differs."""
    mod = import_engine(name)
    LocalExecutor = importlib.import_module(f"{name}.executors").LocalExecutor
    task = mod.task(max_retries=1, retry_delay=timedelta(seconds=0))(flaky)
    with mod.Flow("w7-retry") as flow:
        result = task(1)

    def verify(state: Any) -> None:
        check(state.is_successful(), f"flow state {state!r}")
        check(state.result[result].result == 2, "task result")

    return _both(lambda: flow.run(executor=LocalExecutor()), verify, ctx)


def run_dask(ctx: Context) -> Measurement:
    """distributed ``submit(..., retries=1)`` on an in-process LocalCluster (start untimed)."""
    from distributed import Client

    def verify(value: int) -> None:
        check(value == 2, "task result")

    with Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as client:
        measurement = _both(
            lambda: client.submit(flaky, 1, retries=1, pure=False).result(), verify, ctx
        )
    measurement.note = "distributed retries=1, in-process cluster; " + measurement.note
    return measurement


def run_python(ctx: Context) -> Measurement:
    """A plain try/except retry loop: the floor."""

    def run() -> int:
        for attempt in range(2):
            try:
                return flaky(1)
            except ValueError:
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def verify(value: int) -> None:
        check(value == 2, "result")

    measurement = _both(run, verify, ctx)
    measurement.note = "try/except loop; " + measurement.note
    return measurement
