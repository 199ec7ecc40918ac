"""W1: a chain of N trivial tasks (each takes the previous one's result), LocalExecutor."""

from __future__ import annotations

import importlib
import time

from benchmarks._common import Context, Measurement, check, import_engine, inc, timed

ID = "W1"
TITLE = "chain of N tasks, LocalExecutor"
SIZES = {"small": 20, "default": 500}
SYSTEMS = ("flowcore", "prefect", "dask", "python")
REPEAT = {"default": 5, "prefect": 3}
WARMUP = {"default": 1, "prefect": 0}


def run_engine(name: str, ctx: Context) -> Measurement:
    """The same code for ``flowcore`` and ``prefect``: only the module name differs."""
    mod = import_engine(name)
    LocalExecutor = importlib.import_module(f"{name}.executors").LocalExecutor
    task = mod.task(inc)
    build_start = time.perf_counter()
    with mod.Flow("w1-chain") as flow:
        last = task(0)
        for _ in range(ctx.n - 1):
            last = task(last)
    build_s = time.perf_counter() - build_start

    def verify(state: object) -> None:
        check(state.is_successful(), f"flow state {state!r}")
        check(state.result[last].result == ctx.n, "last task result")

    times = timed(lambda: flow.run(executor=LocalExecutor()), verify, ctx)
    return Measurement(times, extra={"build_s": build_s})


def run_dask(ctx: Context) -> Measurement:
    """``dask.delayed`` chain computed with the synchronous scheduler (graph build untimed)."""
    from dask import delayed

    last = delayed(inc)(0)
    for _ in range(ctx.n - 1):
        last = delayed(inc)(last)

    def verify(value: int) -> None:
        check(value == ctx.n, "chain result")

    times = timed(lambda: last.compute(scheduler="sync"), verify, ctx)
    return Measurement(times, note="delayed, sync scheduler")


def run_python(ctx: Context) -> Measurement:
    """Plain calls: the floor."""

    def run() -> int:
        value = 0
        for _ in range(ctx.n):
            value = inc(value)
        return value

    def verify(value: int) -> None:
        check(value == ctx.n, "chain result")

    return Measurement(timed(run, verify, ctx), note="plain calls")
