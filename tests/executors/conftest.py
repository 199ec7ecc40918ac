"""Real executors and Dask clusters for the executor tests.

* ``local_cluster``: a ``distributed.LocalCluster`` of two worker processes on 127.0.0.1,
  shared by the session.
* ``dask_cli_cluster``: a ``dask scheduler`` process and a ``dask worker --nworkers 2``
  process (two worker processes under one nanny process) on 127.0.0.1 with free ports,
  started for the session with ``PYTHONPATH`` set to the repository so the workers import
  ``tests.executors.flows``; both are terminated afterwards. Each worker offers the
  resource ``GPU=2``.
* ``temporary_cluster``: a started ``DaskExecutor`` on a temporary cluster of its own (two
  worker processes of one thread each; flowcore's crash policy installed), per module.
* ``executor``: the executor contract's parametrised fixture, one started session per kind
  and module (flow.run re-enters it): LocalExecutor, LocalDaskExecutor sync / threads /
  processes, DaskExecutor on ``local_cluster``.

Dask worker processes get ``FLOWCORE__LOGGING__LEVEL=WARNING`` in their environment (the
nanny's ``env``), so they do not log two INFO lines per task run to the test output.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowcore.executors import DaskExecutor, Executor, LocalDaskExecutor, LocalExecutor

REPO = Path(__file__).resolve().parents[2]
WORKER_ENV = {"FLOWCORE__LOGGING__LEVEL": "WARNING"}
EXECUTOR_KINDS = ["local", "dask-sync", "dask-threads", "dask-processes", "distributed"]


def local_cluster_kwargs(**overrides: Any) -> dict[str, Any]:
    """LocalCluster arguments for tests: processes on 127.0.0.1 (or in-process workers),
    no fixed ports, quiet."""
    kwargs: dict[str, Any] = {
        "n_workers": 2, "threads_per_worker": 2, "processes": True, "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0", "silence_logs": logging.CRITICAL, "env": WORKER_ENV,
    }  # fmt: skip
    kwargs.update(overrides)
    if not kwargs["processes"]:  # in-process workers: inproc:// transport, no nanny
        kwargs.pop("host")
        kwargs.pop("env")
    return kwargs


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    cluster = LocalCluster(**local_cluster_kwargs())
    try:
        yield cluster
    finally:
        cluster.close()


class DaskCLICluster:
    """``dask scheduler`` + ``dask worker --nworkers 2`` subprocesses (see the module docs)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.scheduler_file = workdir / "scheduler.json"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def _spawn(self, name: str, *args: str) -> None:
        env = {
            **os.environ, **WORKER_ENV,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }  # fmt: skip
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "dask", name, *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=self.workdir,
        ))  # fmt: skip
        log.close()

    def start(self, timeout: float = 90.0) -> None:
        self._spawn(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(self.scheduler_file),
        )
        deadline = time.monotonic() + timeout
        while not self.address:
            self._check_alive(deadline)
            try:
                self.address = json.loads(self.scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):  # not written yet, or half written
                time.sleep(0.1)
        self._spawn(
            "worker",
            "--scheduler-file",
            str(self.scheduler_file),
            "--nworkers",
            "2",
            "--nthreads",
            "2",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
            "--resources",
            "GPU=2",
            "--death-timeout",
            "60",
            "--local-directory",
            str(self.workdir / "workers"),
        )
        from distributed import Client

        with Client(self.address, set_as_default=False, timeout=timeout) as client:
            client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))

    def _check_alive(self, deadline: float) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"dask process exited: {self.logs()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"dask processes did not start in time: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.workdir.glob("*.log")))

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes = []


@pytest.fixture(scope="session")
def dask_cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCLICluster]:
    cluster = DaskCLICluster(tmp_path_factory.mktemp("dask-cli"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def make_executor(kind: str, request: pytest.FixtureRequest) -> Executor:
    if kind == "local":
        return LocalExecutor()
    if kind.startswith("dask-"):
        return LocalDaskExecutor(kind.split("-", 1)[1], num_workers=2)
    cluster = request.getfixturevalue("local_cluster")
    return DaskExecutor(address=cluster.scheduler_address)


@pytest.fixture(scope="module")
def temporary_cluster() -> Iterator[DaskExecutor]:
    """A started ``DaskExecutor`` on a temporary cluster it creates (so flowcore's crash
    policy is installed), of two worker processes of one thread each, per test module."""
    executor = DaskExecutor(cluster_kwargs=local_cluster_kwargs(threads_per_worker=1))
    with executor.start():
        yield executor


@pytest.fixture(scope="module", params=EXECUTOR_KINDS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """A started executor of each kind, shared by the tests of a module."""
    executor = make_executor(request.param, request)
    with executor.start():
        yield executor
