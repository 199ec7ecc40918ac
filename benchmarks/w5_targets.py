"""W5: N checkpointed tasks with targets; the second run is in a NEW process, all targets exist.

The runner calls each system twice: once with ``ctx.phase == "setup"`` (a process that
computes the N values and writes them), then ``repeat`` times with ``ctx.phase ==
"measure"``, each time in a new process with one timed run, so every repetition is a cold
hit (imports done, nothing of the values in memory). ``ctx.workdir`` is shared by the
phases of one system and removed by the runner afterwards.

flowcore has no ``LocalResult`` yet (issue 4): its row says ``n/a (needs LocalResult)``
until ``flowcore.engine.results.LocalResult`` exists, and then measures itself with this
same code.
"""

from __future__ import annotations

import importlib
import os
import pickle
import time

from benchmarks._common import (
    Context,
    Measurement,
    NotAvailable,
    check,
    engine_attr,
    import_engine,
    timed,
)

ID = "W5"
TITLE = "N checkpointed tasks with targets, 2nd run in a new process"
SIZES = {"small": 20, "default": 1000}
SYSTEMS = ("flowcore", "prefect", "dask", "joblib", "python")
REPEAT = {"default": 5, "prefect": 3}
WARMUP = {"default": 0}
#: setup phase in one process, then one new process per timed repetition
NEW_PROCESS_PER_REPEAT = True

_calls = [0]


def counted_inc(x: int) -> int:
    """``x + 1``, counting calls so a run that is not all hits is caught."""
    _calls[0] += 1
    return x + 1


def run_engine(name: str, ctx: Context) -> Measurement:
    """The same code for ``flowcore`` and ``prefect``: only the module name differs."""
    mod = import_engine(name)
    LocalResult = engine_attr(
        name, "engine.results", "LocalResult", "n/a (needs LocalResult, issue 4)"
    )
    LocalExecutor = importlib.import_module(f"{name}.executors").LocalExecutor
    Cached = importlib.import_module(f"{name}.engine.state").Cached
    check(ctx.workdir is not None, "W5 needs a workdir")
    task = mod.task(checkpoint=True, result=LocalResult(dir=ctx.workdir))(counted_inc)
    build_start = time.perf_counter()
    with mod.Flow("w5-targets") as flow:
        tasks = [task(i, task_args={"target": f"w5-{i}.pkl"}) for i in range(ctx.n)]
    build_s = time.perf_counter() - build_start

    def run() -> object:
        with mod.context(checkpointing=True):
            return flow.run(executor=LocalExecutor())

    if ctx.phase == "setup":
        state = run()
        check(state.is_successful() and _calls[0] == ctx.n, "setup run computes every task")
        for i in range(ctx.n):
            check(os.path.exists(os.path.join(ctx.workdir, f"w5-{i}.pkl")), f"target {i}")
        return Measurement([])

    def verify(state: object) -> None:
        check(state.is_successful(), f"flow state {state!r}")
        check(_calls[0] == 0, "a run with every target present called a task function")
        for i, t in enumerate(tasks):
            task_state = state.result[t]
            check(isinstance(task_state, Cached), f"task {i} is {task_state!r}, not Cached")
            check(task_state.result == i + 1, f"task {i} value read from its target")

    return Measurement(
        timed(run, verify, ctx),
        note="cold hits verified (Cached, no calls)",
        extra={"build_s": build_s},
    )


def run_dask(ctx: Context) -> Measurement:
    raise NotAvailable("n/a (dask has no persistent task results)")


def run_joblib(ctx: Context) -> Measurement:
    """``joblib.Memory`` cold hits: filled by the setup process, read by a new one."""
    try:
        import joblib
    except ImportError as exc:
        raise NotAvailable("n/a (joblib not installed)") from exc
    check(ctx.workdir is not None, "W5 needs a workdir")
    cached = joblib.Memory(ctx.workdir, verbose=0).cache(counted_inc)
    expected = list(range(1, ctx.n + 1))
    if ctx.phase == "setup":
        check([cached(i) for i in range(ctx.n)] == expected, "joblib setup")
        return Measurement([])

    def verify(values: list[int]) -> None:
        check(values == expected and _calls[0] == 0, "joblib cold hits")

    times = timed(lambda: [cached(i) for i in range(ctx.n)], verify, ctx)
    return Measurement(times, note="joblib.Memory cold hits")


def run_python(ctx: Context) -> Measurement:
    """``os.path.exists`` + ``pickle.load`` of one file per task: the floor."""
    check(ctx.workdir is not None, "W5 needs a workdir")
    paths = [os.path.join(ctx.workdir, f"py-{i}.pkl") for i in range(ctx.n)]
    expected = list(range(1, ctx.n + 1))
    if ctx.phase == "setup":
        for path, value in zip(paths, expected):
            with open(path, "wb") as handle:
                pickle.dump(value, handle)
        return Measurement([])

    def run() -> list[int]:
        values = []
        for path in paths:
            if os.path.exists(path):
                with open(path, "rb") as handle:
                    values.append(pickle.load(handle))
        return values

    def verify(values: list[int]) -> None:
        check(values == expected, "pickle loads")

    return Measurement(timed(run, verify, ctx), note="exists + pickle.load")
