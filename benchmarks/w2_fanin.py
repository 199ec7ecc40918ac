"""W2: N independent trivial tasks and one reduce task over all of them, LocalExecutor."""

from __future__ import annotations

import importlib
import time

from benchmarks._common import Context, Measurement, check, import_engine, inc, timed

ID = "W2"
TITLE = "N independent tasks + one reduce, LocalExecutor"
SIZES = {"small": 20, "default": 1000}
SYSTEMS = ("flowcore", "prefect", "dask", "python")
REPEAT = {"default": 5, "prefect": 3}
WARMUP = {"default": 1, "prefect": 0}


def total(values: list[int]) -> int:
    """The reduce step."""
    return sum(values)


def _expected(n: int) -> int:
    return n * (n + 1) // 2


def run_engine(name: str, ctx: Context) -> Measurement:
    """The same code for ``flowcore`` and ``prefect``: only the module name differs."""
    mod = import_engine(name)
    LocalExecutor = importlib.import_module(f"{name}.executors").LocalExecutor
    task = mod.task(inc)
    reduce = mod.task(total)
    build_start = time.perf_counter()
    with mod.Flow("w2-fanin") as flow:
        result = reduce([task(i) for i in range(ctx.n)])
    build_s = time.perf_counter() - build_start

    def verify(state: object) -> None:
        check(state.is_successful(), f"flow state {state!r}")
        check(state.result[result].result == _expected(ctx.n), "reduce result")

    times = timed(lambda: flow.run(executor=LocalExecutor()), verify, ctx)
    return Measurement(times, extra={"build_s": build_s})


def run_dask(ctx: Context) -> Measurement:
    """``dask.delayed`` fan-in computed with the synchronous scheduler (graph build untimed)."""
    from dask import delayed

    result = delayed(total)([delayed(inc)(i) for i in range(ctx.n)])

    def verify(value: int) -> None:
        check(value == _expected(ctx.n), "reduce result")

    times = timed(lambda: result.compute(scheduler="sync"), verify, ctx)
    return Measurement(times, note="delayed, sync scheduler")


def run_python(ctx: Context) -> Measurement:
    """Plain calls: the floor."""

    def verify(value: int) -> None:
        check(value == _expected(ctx.n), "reduce result")

    times = timed(lambda: total([inc(i) for i in range(ctx.n)]), verify, ctx)
    return Measurement(times, note="plain calls")
