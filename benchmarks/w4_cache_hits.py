"""W4: N tasks with ``cache_for``; the second run in the same process is all cache hits.

Each task gets its own ``cache_key`` so every hit returns that task's own value (all N tasks
share one name; with a shared key every task would see the others' cached states). The first
run fills the cache untimed; each timed repetition is a run in which every task is a hit.
"""

from __future__ import annotations

import importlib
import time
from datetime import timedelta

from benchmarks._common import Context, Measurement, NotAvailable, check, import_engine, timed

ID = "W4"
TITLE = "N tasks with cache_for, 2nd run all cache hits, same process"
SIZES = {"small": 20, "default": 1000}
SYSTEMS = ("flowcore", "prefect", "dask", "joblib", "python")
REPEAT = {"default": 5, "prefect": 3}
WARMUP = {"default": 1, "prefect": 0}

_calls = [0]


def counted_inc(x: int) -> int:
    """``x + 1``, counting calls so a run that is not all hits is caught."""
    _calls[0] += 1
    return x + 1


def run_engine(name: str, ctx: Context) -> Measurement:
    """The same code for ``flowcore`` and ``prefect``: only the module name differs."""
    mod = import_engine(name)
    LocalExecutor = importlib.import_module(f"{name}.executors").LocalExecutor
    Cached = importlib.import_module(f"{name}.engine.state").Cached
    task = mod.task(cache_for=timedelta(hours=1))(counted_inc)
    build_start = time.perf_counter()
    with mod.Flow("w4-cache") as flow:
        tasks = [task(i, task_args={"cache_key": f"w4-{i}"}) for i in range(ctx.n)]
    build_s = time.perf_counter() - build_start

    first = flow.run(executor=LocalExecutor())
    check(first.is_successful() and _calls[0] == ctx.n, "first run computes every task")

    def verify(state: object) -> None:
        check(state.is_successful(), f"flow state {state!r}")
        check(_calls[0] == ctx.n, "a cached run called a task function")
        for i, t in enumerate(tasks):
            task_state = state.result[t]
            check(isinstance(task_state, Cached), f"task {i} is {task_state!r}, not Cached")
            check(task_state.result == i + 1, f"task {i} cached value")

    times = timed(lambda: flow.run(executor=LocalExecutor()), verify, ctx)
    return Measurement(
        times, note="all hits verified (Cached, no calls)", extra={"build_s": build_s}
    )


def run_dask(ctx: Context) -> Measurement:
    raise NotAvailable("n/a (dask has no task result cache)")


def run_joblib(ctx: Context) -> Measurement:
    """``joblib.Memory`` hits in the process that filled the cache."""
    try:
        import joblib
    except ImportError as exc:
        raise NotAvailable("n/a (joblib not installed)") from exc
    check(ctx.workdir is not None, "W4 joblib needs a workdir")
    cached = joblib.Memory(ctx.workdir, verbose=0).cache(counted_inc)
    first = [cached(i) for i in range(ctx.n)]
    check(first == list(range(1, ctx.n + 1)) and _calls[0] == ctx.n, "joblib first run")

    def verify(values: list[int]) -> None:
        check(values == first and _calls[0] == ctx.n, "joblib hits")

    times = timed(lambda: [cached(i) for i in range(ctx.n)], verify, ctx)
    return Measurement(times, note="joblib.Memory hits, same process")


def run_python(ctx: Context) -> Measurement:
    """``functools.lru_cache`` hits: the floor."""
    from functools import lru_cache

    cached = lru_cache(maxsize=None)(counted_inc)
    first = [cached(i) for i in range(ctx.n)]

    def verify(values: list[int]) -> None:
        check(values == first and _calls[0] == ctx.n, "lru_cache hits")

    times = timed(lambda: [cached(i) for i in range(ctx.n)], verify, ctx)
    return Measurement(times, note="lru_cache hits")
