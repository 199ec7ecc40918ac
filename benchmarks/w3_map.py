"""W3: ``task.map`` over a list of N items, LocalExecutor (one mapped child per item)."""

from __future__ import annotations

import importlib
import time

from benchmarks._common import Context, Measurement, check, import_engine, inc, timed

ID = "W3"
TITLE = ".map over N items, LocalExecutor"
SIZES = {"small": 50, "default": 10_000}
SYSTEMS = ("flowcore", "prefect", "dask", "python")
REPEAT = {"default": 5, "dask": 3, "prefect": 1}
WARMUP = {"default": 0}


def _expected(n: int) -> int:
    return n * (n + 1) // 2


def run_engine(name: str, ctx: Context) -> Measurement:
    """The same code for ``flowcore`` and ``prefect``: only the module name differs."""
    mod = import_engine(name)
    LocalExecutor = importlib.import_module(f"{name}.executors").LocalExecutor
    task = mod.task(inc)
    build_start = time.perf_counter()
    with mod.Flow("w3-map") as flow:
        mapped = task.map(list(range(ctx.n)))
    build_s = time.perf_counter() - build_start

    def verify(state: object) -> None:
        check(state.is_successful(), f"flow state {state!r}")
        values = state.result[mapped].result
        check(len(values) == ctx.n and sum(values) == _expected(ctx.n), "mapped results")

    times = timed(lambda: flow.run(executor=LocalExecutor()), verify, ctx)
    return Measurement(times, extra={"build_s": build_s})


def run_dask(ctx: Context) -> Measurement:
    """A list of ``dask.delayed`` calls computed with the sync scheduler (build untimed)."""
    import dask
    from dask import delayed

    calls = [delayed(inc)(i) for i in range(ctx.n)]

    def verify(values: tuple[int, ...]) -> None:
        check(len(values) == ctx.n and sum(values) == _expected(ctx.n), "mapped results")

    times = timed(lambda: dask.compute(*calls, scheduler="sync"), verify, ctx)
    return Measurement(times, note="delayed list, sync scheduler")


def run_python(ctx: Context) -> Measurement:
    """Plain calls: the floor."""

    def verify(values: list[int]) -> None:
        check(len(values) == ctx.n and sum(values) == _expected(ctx.n), "mapped results")

    times = timed(lambda: [inc(i) for i in range(ctx.n)], verify, ctx)
    return Measurement(times, note="list comprehension")
