"""The seed's isolation example with separate OS processes: two flow runs of one cache key
at the same time. READ_COMMITTED lets both execute; SERIALIZABLE executes the task body
once and the other run ends Cached, also when the task runs longer than the lock's hold
timeout (the lease is renewed). File-system locks and a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import os, sys, time
    from flowcore import Flow, task
    from flowcore import cache_policies as cp
    from flowcore.transactions import IsolationLevel

    workdir, isolation, lock_spec, name, hold = sys.argv[1:6]
    if lock_spec.startswith("fs:"):
        from flowcore.locking.filesystem import FileSystemLockManager
        manager = FileSystemLockManager(lock_dir=lock_spec[3:], default_hold_timeout=float(hold))
    else:
        from flowcore.locking.redis import RedisLockManager
        manager = RedisLockManager(host="127.0.0.1", port=int(lock_spec[6:]), default_hold_timeout=float(hold))

    def wait_for(path, seconds=60):
        deadline = time.monotonic() + seconds
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {path}")
            time.sleep(0.01)

    policy = cp.INPUTS.configure(isolation_level=IsolationLevel[isolation], lock_manager=manager)

    @task(cache_policy=policy)
    def expensive(x):
        open(os.path.join(workdir, f"entered-{name}"), "w").close()
        with open(os.path.join(workdir, "executions.txt"), "a") as fh:
            fh.write(name + "\\n")
        if isolation == "READ_COMMITTED":
            wait_for(os.path.join(workdir, "entered-" + ("b" if name == "a" else "a")))
        else:
            wait_for(os.path.join(workdir, "release"))
        return x * 2

    with Flow("isolation") as flow:
        out = expensive(21)
    state = flow.run()
    print("STATE", type(state.result[out]).__name__, state.result[out].result)
""")


def _start(
    tmp_path: Path, isolation: str, lock_spec: str, name: str, hold: float = 300
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLOWCORE__HOME_DIR": str(tmp_path / "home"),
    }
    return subprocess.Popen(
        [
            sys.executable,
            str(tmp_path / "flow.py"),
            str(tmp_path),
            isolation,
            lock_spec,
            name,
            str(hold),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return next(line for line in out.splitlines() if line.startswith("STATE"))


def _lock_spec(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "filesystem":
        return f"fs:{tmp_path / 'locks'}"
    return f"redis:{request.getfixturevalue('redis_port')}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["filesystem", "redis"])
def test_read_committed_both_processes_execute(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "flow.py").write_text(SCRIPT)
    spec = _lock_spec(kind, tmp_path, request)
    first = _start(tmp_path, "READ_COMMITTED", spec, "a")
    second = _start(tmp_path, "READ_COMMITTED", spec, "b")
    states = sorted([_finish(first), _finish(second)])
    assert states == ["STATE Success 42", "STATE Success 42"]
    assert sorted((tmp_path / "executions.txt").read_text().split()) == ["a", "b"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["filesystem", "redis"])
def test_serializable_executes_once_and_the_other_is_cached(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "flow.py").write_text(SCRIPT)
    spec = _lock_spec(kind, tmp_path, request)
    first = _start(tmp_path, "SERIALIZABLE", spec, "a")
    _wait_for(tmp_path / "entered-a", first)
    second = _start(tmp_path, "SERIALIZABLE", spec, "b")
    time.sleep(1.0)  # let the second run reach the lock while the first still holds it
    (tmp_path / "release").touch()
    assert _finish(first) == "STATE Success 42"
    assert _finish(second) == "STATE Cached 42"
    assert (tmp_path / "executions.txt").read_text().split() == ["a"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["filesystem", "redis"])
def test_serializable_holds_the_key_through_a_task_longer_than_the_hold_timeout(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "flow.py").write_text(SCRIPT)
    spec = _lock_spec(kind, tmp_path, request)
    first = _start(tmp_path, "SERIALIZABLE", spec, "a", hold=1.0)
    _wait_for(tmp_path / "entered-a", first)
    second = _start(tmp_path, "SERIALIZABLE", spec, "b", hold=1.0)

    # a's task runs 2.5 hold timeouts (and more: b's start-up comes first); b must wait
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert not (tmp_path / "entered-b").exists(), "b entered while a held the key"
        time.sleep(0.02)
    (tmp_path / "release").touch()

    assert _finish(first) == "STATE Success 42"
    assert _finish(second) == "STATE Cached 42"
    assert (tmp_path / "executions.txt").read_text().split() == ["a"]
