"""SERIALIZABLE across real processes, where it is hardest: inside a ``transaction()`` (the
lock is held until the group commits, after the task ends) and under a hold timeout shorter
than the task (the lease is renewed while the holder works). File-system locks and a real
redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.locking.test_isolation_flows import _lock_spec

SCRIPT = textwrap.dedent("""
    import os, sys, time
    from flowcore import Flow, task
    from flowcore import cache_policies as cp
    from flowcore.transactions import IsolationLevel, transaction

    workdir, lock_spec, name, mode = sys.argv[1:5]
    hold = 1.0
    if lock_spec.startswith("fs:"):
        from flowcore.locking.filesystem import FileSystemLockManager
        manager = FileSystemLockManager(lock_dir=lock_spec[3:], default_hold_timeout=hold)
    else:
        from flowcore.locking.redis import RedisLockManager
        manager = RedisLockManager(host="127.0.0.1", port=int(lock_spec[6:]), default_hold_timeout=hold)

    policy = cp.INPUTS.configure(isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=manager)

    @task(cache_policy=policy)
    def body(x):
        with open(os.path.join(workdir, "executions.txt"), "a") as fh:
            fh.write(name + "\\n")
        time.sleep(3.0 if mode == "long" else 0.2)
        return x * 2

    @task
    def after(y):
        time.sleep(1.5)  # the group commits only after this task: the lock must outlive body
        return y

    with Flow("serializable") as flow:
        if mode == "transaction":
            with transaction():
                out = body(21)
                after(out)
        else:
            out = body(21)
    state = flow.run()
    print("STATE", type(state.result[out]).__name__, state.result[out].result)
""")


def _run_all(tmp_path: Path, spec: str, mode: str, count: int) -> list[str]:
    (tmp_path / "flow.py").write_text(SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLOWCORE__HOME_DIR": str(tmp_path / "home"),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / "flow.py"), str(tmp_path), spec, f"p{i}", mode],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    states = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        states.append(next(line for line in out.splitlines() if line.startswith("STATE")))
    return states


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["filesystem", "redis"])
def test_serializable_in_a_transaction_runs_the_body_once_across_4_processes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    states = _run_all(tmp_path, _lock_spec(kind, tmp_path, request), "transaction", 4)
    assert len((tmp_path / "executions.txt").read_text().split()) == 1
    assert sorted(states) == ["STATE Cached 42"] * 3 + ["STATE Success 42"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["filesystem", "redis"])
def test_a_3s_task_under_a_1s_hold_timeout_is_entered_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    states = _run_all(tmp_path, _lock_spec(kind, tmp_path, request), "long", 2)
    assert len((tmp_path / "executions.txt").read_text().split()) == 1
    assert sorted(states) == ["STATE Cached 42", "STATE Success 42"]
