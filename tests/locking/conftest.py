"""Real components for the lock manager tests.

* ``redis_port``: a ``redis-server`` on 127.0.0.1 and a free port, for the session (no
  persistence); install it with ``apt-get install redis-server`` (``make deps`` does).
* ``dask_client``: a ``LocalCluster`` of two worker processes on 127.0.0.1, per module, with
  a short lease timeout so a killed holder's lock comes back quickly. The client is not the
  default client, so code that finds no client still fails as it would without a cluster.
* ``LockProcess``: a child Python process that holds a pickled lock manager and obeys
  one-line commands on stdin ("acquire <timeout>", "release", "holder", "locked"; for a
  lease, "hold <timeout>", "work <seconds>" (sleeps, holding it) and "unhold"), answering
  each on stdout; the tests drive it step by step instead of sleeping.
"""

from __future__ import annotations

import base64
import os
import pickle
import select
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowcore.locking import LockManager
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]

# distributed's lock settings for the test cluster: a dead holder's lease is dropped after
# at most LEASE_TIMEOUT + the validation interval
LEASE_TIMEOUT = "2s"
DASK_LOCK_CONFIG = {
    "distributed.scheduler.locks.lease-timeout": LEASE_TIMEOUT,
    "distributed.scheduler.locks.lease-validation-interval": "200ms",
}


@pytest.fixture
def key() -> str:
    """A lock key no other test uses (the Redis server and Dask cluster are shared)."""
    return f"test-key/{uuid.uuid4().hex}"


# -- redis ----------------------------------------------------------------------------


def start_redis(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """A ``redis-server`` on 127.0.0.1:``port`` (no persistence), answering pings."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
    log = open(workdir / "redis.log", "wb")  # noqa: SIM115 - closed once the process has it
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return process
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stop_redis(process)
                    raise RuntimeError(
                        f"redis-server did not start: {(workdir / 'redis.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.05)
    finally:
        client.close()


def stop_redis(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    process = start_redis(tmp_path_factory.mktemp("redis"), port)
    try:
        yield port
    finally:
        stop_redis(process)


# -- dask -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(DASK_LOCK_CONFIG):
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
        client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        try:
            yield client
        finally:
            client.close()  # type: ignore[no-untyped-call]
            cluster.close()


def worker_addresses(client: Any) -> list[str]:
    client.wait_for_workers(2, timeout=60)
    return sorted(client.scheduler_info()["workers"])


# -- managers by name -----------------------------------------------------------------

MANAGERS = ["memory", "filesystem", "redis", "dask"]


@pytest.fixture(params=MANAGERS)
def make_manager(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., LockManager]]:
    """A factory of managers of one kind: ``make_manager(default_hold_timeout=...)``; the
    Redis ones are closed after the test (their connections would otherwise be closed
    by the garbage collector, with a ResourceWarning in whichever test it runs in)."""
    made: list[Any] = []

    def making(factory: Callable[..., LockManager]) -> Callable[..., LockManager]:
        def make(**kwargs: Any) -> LockManager:
            manager = factory(**kwargs)
            made.append(manager)
            return manager

        return make

    yield making(_factory(request, tmp_path))
    for manager in made:
        close = getattr(manager, "close", None)
        if close is not None:
            close()


def _factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., LockManager]:
    kind = request.param
    if kind == "memory":
        from flowcore.locking.memory import MemoryLockManager

        return MemoryLockManager
    if kind == "filesystem":
        from flowcore.locking.filesystem import FileSystemLockManager

        return lambda **kwargs: FileSystemLockManager(tmp_path / "locks", **kwargs)
    if kind == "redis":
        from flowcore.locking.redis import RedisLockManager

        port = request.getfixturevalue("redis_port")
        return lambda **kwargs: RedisLockManager(host="127.0.0.1", port=port, **kwargs)
    from flowcore.locking.dask import DaskLockManager

    client = request.getfixturevalue("dask_client")
    return lambda **kwargs: DaskLockManager(client, **kwargs)


@pytest.fixture
def manager(make_manager: Callable[..., LockManager]) -> LockManager:
    return make_manager()


# -- a lock holder in another process -------------------------------------------------

_CHILD = r"""
import base64, pickle, sys, time
manager = pickle.loads(base64.b64decode(sys.argv[1]))
key, holder = sys.argv[2], sys.argv[3]
hold = None if sys.argv[4] == "None" else float(sys.argv[4])
print("ready", flush=True)
for line in sys.stdin:
    command, *args = line.split()
    if command == "acquire":
        timeout = None if args[0] == "None" else float(args[0])
        print(manager.acquire_lock(key, holder, acquire_timeout=timeout, hold_timeout=hold), flush=True)
    elif command == "release":
        manager.release_lock(key, holder)
        print("released", flush=True)
    elif command == "holder":
        print(manager.is_lock_holder(key, holder), flush=True)
    elif command == "locked":
        print(manager.is_locked(key), flush=True)
    elif command == "hold":
        timeout = None if args[0] == "None" else float(args[0])
        lease = manager.hold(key, holder, acquire_timeout=timeout, hold_timeout=hold)
        print("held", flush=True)
    elif command == "work":
        time.sleep(float(args[0]))
        print("done", flush=True)
    elif command == "unhold":
        lease.release()
        print("released", "lost" if lease.lost else "kept", flush=True)
"""


class LockProcess:
    """A child process holding ``manager`` (pickled) that runs one command per line."""

    def __init__(
        self, manager: LockManager, key: str, holder: str, hold: float | None = None
    ) -> None:
        payload = base64.b64encode(pickle.dumps(manager)).decode("ascii")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, payload, key, holder, str(hold)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"lock process {self.pid} exited with {self.process.wait()}")
        return line.strip()

    def answered(self) -> bool:
        """Whether an answer is waiting on stdout (call with nothing read ahead)."""
        assert self.process.stdout is not None
        return bool(select.select([self.process.stdout], [], [], 0)[0])

    def expect(self, answer: str) -> None:
        assert self.read() == answer

    def ask(self, command: str) -> str:
        self.send(command)
        return self.read()

    def kill(self, reap: bool = True) -> None:
        self.process.kill()
        if reap:
            self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def lock_process() -> Iterator[Callable[..., LockProcess]]:
    """Start ``LockProcess`` children; every one is killed and reaped after the test."""
    started: list[LockProcess] = []

    def start(
        manager: LockManager, key: str, holder: str, hold: float | None = None
    ) -> LockProcess:
        child = LockProcess(manager, key, holder, hold)
        started.append(child)
        child.expect("ready")
        return child

    try:
        yield start
    finally:
        for child in started:
            child.close()
