"""W6: ``.map`` over N items on a DaskExecutor, LocalCluster of 2 worker processes.

Each system starts its own ``LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)`` (untimed; the start time goes in the notes). The engines run
``flow.run(executor=DaskExecutor(address=<that cluster>))`` (connecting the client is part
of a run); the raw anchor is ``client.gather(client.map(inc, range(N), pure=False))`` on a
client made once. Peak RSS is the client process only (the workers are other processes).

flowcore has no DaskExecutor yet (issue 7): its row says ``n/a (needs DaskExecutor)`` until
``flowcore.executors.DaskExecutor`` exists, and then measures itself with this same code.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._common import (
    Context,
    Measurement,
    check,
    engine_attr,
    import_engine,
    inc,
    silence_engine_logging,
    timed,
)

ID = "W6"
TITLE = "DaskExecutor .map over N items, LocalCluster of 2 worker processes"
SIZES = {"small": 20, "default": 2000}
SYSTEMS = ("flowcore", "prefect", "dask", "python")
REPEAT = {"default": 3, "python": 5, "prefect": 1}
WARMUP = {"default": 0}


def _expected(n: int) -> int:
    return n * (n + 1) // 2


def _start_cluster() -> tuple[Any, float]:
    from distributed import LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return cluster, time.perf_counter() - start


def run_engine(name: str, ctx: Context) -> Measurement:
    """The same code for ``flowcore`` and ``prefect``: only the module name differs."""
    mod = import_engine(name)
    DaskExecutor = engine_attr(
        name, "executors", "DaskExecutor", "n/a (needs DaskExecutor, issue 7)"
    )
    from distributed import Client

    task = mod.task(inc)
    build_start = time.perf_counter()
    with mod.Flow("w6-dask-map") as flow:
        mapped = task.map(list(range(ctx.n)))
    build_s = time.perf_counter() - build_start

    def verify(state: object) -> None:
        check(state.is_successful(), f"flow state {state!r}")
        values = state.result[mapped].result
        check(len(values) == ctx.n and sum(values) == _expected(ctx.n), "mapped results")

    cluster, startup = _start_cluster()
    try:
        with Client(cluster) as client:
            client.run(silence_engine_logging, name)  # the workers log too
        address = cluster.scheduler_address
        times = timed(lambda: flow.run(executor=DaskExecutor(address=address)), verify, ctx)
    finally:
        cluster.close()
    return Measurement(
        times,
        note=f"cluster start {startup:.1f} s untimed",
        extra={"cluster_start_s": startup, "build_s": build_s},
    )


def run_dask(ctx: Context) -> Measurement:
    """Raw ``client.map`` + ``gather`` of the same function on the same kind of cluster."""
    from distributed import Client

    def verify(values: list[int]) -> None:
        check(len(values) == ctx.n and sum(values) == _expected(ctx.n), "gathered results")

    cluster, startup = _start_cluster()
    try:
        with Client(cluster) as client:
            times = timed(
                lambda: client.gather(client.map(inc, range(ctx.n), pure=False)), verify, ctx
            )
    finally:
        cluster.close()
    return Measurement(
        times,
        note=f"client.map + gather; cluster start {startup:.1f} s untimed",
        extra={"cluster_start_s": startup},
    )


def run_python(ctx: Context) -> Measurement:
    """Plain calls in one process: the floor."""

    def verify(values: list[int]) -> None:
        check(len(values) == ctx.n and sum(values) == _expected(ctx.n), "results")

    return Measurement(timed(lambda: [inc(i) for i in range(ctx.n)], verify, ctx), "plain calls")
