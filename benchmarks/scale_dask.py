"""SCALE-DASK: ``inc.map(range(N))`` over DaskExecutor, N = 1,000,000, with the peak RSS of
the client, the scheduler and each worker, beside raw batched ``client.map``.

The cluster is a ``dask scheduler`` process and a ``dask worker --nworkers 2 --nthreads 1``
process pair on 127.0.0.1 (two worker processes under one nanny, as a ``LocalCluster`` of 2
worker processes has, but with the scheduler in a process of its own so that its memory is
measured apart from the client's); it is started untimed, once per system. The workers'
flowcore logs are formatted as by default and written to /dev/null (as in W6).

* flowcore: ``flow.run(executor=DaskExecutor(address=...))`` (connecting the client is part
  of the run); the children go in automatic batches (``engine/batches.py``: 1,000 per call
  at this size on 2 workers).
* dask: the same function over the same items, batched the same way: ``client.map`` of a
  function that applies ``inc`` to each item of a chunk of 1,000 and returns the pickled
  list, then ``gather``, unpickle and flatten. (Chunks are ``range``s and results pickled
  lists because distributed handles list arguments and results item by item: 200 chunks
  of 1,000 ints returned as lists took 25 s here, as pickled bytes 0.66 s; a 1,000,000-item
  run with list arguments took 68 s and 740 MiB in the scheduler.)

Peak RSS is each process's ``VmHWM`` (Linux), reset before each timed repetition
(``/proc/PID/clear_refs``), so a repetition's figures are its own; the table's RSS column
is the client process. The chained variant (``dec.map(inc.map(...))``) is SCALE-DASK-CHAIN
(``benchmarks/scale_dask_chain.py``).
"""

from __future__ import annotations

import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks._common import (
    Context,
    Measurement,
    NotAvailable,
    check,
    import_engine,
    inc,
    silence_engine_logging,
    timed,
)

ID = "SCALE-DASK"
TITLE = "inc.map over 1,000,000 items, DaskExecutor, 2 worker processes, RSS of every process"
SIZES = {"small": 20_000, "default": 1_000_000}
SYSTEMS = ("flowcore", "dask")
REPEAT = {"default": 1}
WARMUP = {"default": 0}
CHAINED = False

_BATCH = 1000  # flowcore's automatic size at 1,000,000 items on 2 workers (its cap)


def dec(x: int) -> int:
    return x - 1


def inc_all(xs: Iterable[int]) -> bytes:
    return pickle.dumps([inc(x) for x in xs])


def dec_all(data: bytes) -> bytes:
    return pickle.dumps([dec(x) for x in pickle.loads(data)])


def batch_size(n: int) -> int:
    """flowcore's automatic batch size for ``n`` children on 2 worker threads."""
    return min(_BATCH, math.ceil(n / 8))


def _expected(n: int, chained: bool) -> int:
    return n * (n - 1) // 2 + (0 if chained else n)


# -- the cluster ----------------------------------------------------------------------------


class _Cluster:
    def __init__(self, address: str, processes: list[subprocess.Popen[bytes]]) -> None:
        self.address = address
        self.processes = processes
        self.pids: dict[str, int] = {}

    def find_pids(self, client: Any) -> None:
        def pid(dask_scheduler: Any = None) -> int:
            return os.getpid()

        self.pids = {"client": os.getpid(), "scheduler": client.run_on_scheduler(pid)}
        for index, worker_pid in enumerate(sorted(client.run(pid).values())):
            self.pids[f"worker {index + 1}"] = worker_pid

    def reset_peaks(self) -> None:
        for pid in self.pids.values():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as handle:
                    handle.write("5")
            except OSError:
                pass

    def peaks_mib(self) -> dict[str, float]:
        found = {}
        for name, pid in self.pids.items():
            try:
                with open(f"/proc/{pid}/status") as handle:
                    for line in handle:
                        if line.startswith("VmHWM:"):
                            found[name] = int(line.split()[1]) / 1024.0
            except OSError:
                pass
        return found


@contextmanager
def _cluster() -> Iterator[_Cluster]:
    """A ``dask scheduler`` and a ``dask worker --nworkers 2 --nthreads 1`` on 127.0.0.1."""
    from distributed import Client

    workdir = tempfile.mkdtemp(prefix="fcbench-scale-dask-")
    scheduler_file = os.path.join(workdir, "scheduler.json")
    logs = open(os.path.join(workdir, "dask.log"), "wb")  # noqa: SIM115 - closed below
    dask = [sys.executable, "-m", "dask"]
    quiet = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    processes = [
        subprocess.Popen(
            [
                *dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *quiet,
                "--scheduler-file",
                scheduler_file,
            ],
            stdout=logs,
            stderr=subprocess.STDOUT,
        ),  # fmt: skip
    ]
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(scheduler_file):
            if time.monotonic() > deadline:
                logs.flush()
                with open(os.path.join(workdir, "dask.log"), "rb") as log:
                    tail = log.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"the dask scheduler did not start:\n{tail}")
            time.sleep(0.1)
        processes.append(
            subprocess.Popen(
                [*dask, "worker", "--scheduler-file", scheduler_file, "--nworkers", "2",
                 "--nthreads", "1", "--host", "127.0.0.1", *quiet,
                 "--local-directory", workdir],
                stdout=logs, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        with Client(scheduler_file=scheduler_file, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            cluster = _Cluster(client.scheduler.address, processes)
            cluster.find_pids(client)
            client.run(silence_engine_logging, "flowcore")
        yield cluster
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        logs.close()
        shutil.rmtree(workdir, ignore_errors=True)  # (its log reached hundreds of MB a run)


def _measured(
    cluster: _Cluster, run: Callable[[], Any], verify: Callable[[Any], None], ctx: Context
) -> tuple[list[float], dict[str, float]]:
    peaks: dict[str, float] = {}

    def before_each() -> None:
        cluster.reset_peaks()

    def check_and_record(value: Any) -> None:
        peaks.update(cluster.peaks_mib())
        verify(value)

    times = timed(run, check_and_record, ctx, before_each=before_each)
    return times, peaks


def _note(peaks: dict[str, float], batch: int) -> str:
    workers = " / ".join(f"{v:,.0f}" for k, v in sorted(peaks.items()) if k.startswith("worker"))
    return (
        f"peak RSS MiB: client {peaks.get('client', 0):,.0f}, scheduler "
        f"{peaks.get('scheduler', 0):,.0f}, workers {workers}; {batch:,} items per Dask task"
    )


# -- the systems ----------------------------------------------------------------------------


def run_engine(name: str, ctx: Context) -> Measurement:
    if name != "flowcore":
        raise NotAvailable("n/a (a million children: not attempted)")
    mod = import_engine(name)
    from flowcore.executors import DaskExecutor

    chained = CHAINED
    with mod.Flow("scale-dask") as flow:
        last = mod.task(inc).map(list(range(ctx.n)))
        if chained:
            last = mod.task(dec).map(last)

    def verify(state: Any) -> None:
        check(state.is_successful(), f"flow state {state!r}")
        values = state.result[last].result
        check(len(values) == ctx.n and sum(values) == _expected(ctx.n, chained), "results")

    with _cluster() as cluster:
        times, peaks = _measured(
            cluster,
            lambda: flow.run(executor=DaskExecutor(address=cluster.address)),
            verify,
            ctx,
        )
    return Measurement(times, note=_note(peaks, batch_size(ctx.n)), extra={"peak_rss_mib": peaks})


def run_dask(ctx: Context) -> Measurement:
    """Raw ``client.map`` over the same items in batches of the same size, then gather."""
    from distributed import Client

    chained = CHAINED
    size = batch_size(ctx.n)

    def run(client: Any) -> list[int]:
        # ranges, not lists: dask looks inside list arguments for keys, which costs it
        # ~70 us an item (a 1,000,000-item run took 68 s and 740 MiB in the scheduler)
        chunks = [range(i, min(ctx.n, i + size)) for i in range(0, ctx.n, size)]
        futures = client.map(inc_all, chunks, pure=False)
        if chained:
            futures = client.map(dec_all, futures, pure=False)
        return [x for data in client.gather(futures) for x in pickle.loads(data)]

    def verify(values: list[int]) -> None:
        check(len(values) == ctx.n and sum(values) == _expected(ctx.n, chained), "results")

    with _cluster() as cluster:
        with Client(cluster.address, set_as_default=False) as client:
            times, peaks = _measured(cluster, lambda: run(client), verify, ctx)
    return Measurement(
        times,
        note="client.map of batches + gather; " + _note(peaks, size),
        extra={"peak_rss_mib": peaks},
    )
