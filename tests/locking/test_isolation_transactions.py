"""SERIALIZABLE across real processes, where it is hardest: inside a ``transaction()`` (the
lock is held until the group commits, after the task ends) and under a hold timeout shorter
than the task (the lease is renewed while the holder works). File-system locks and a real
redis-server. Then one flow run whose groups share a key: it must never wait on a lock it
keeps itself (each such run is a subprocess with a timeout, so a hang fails the test)."""

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


SAME_RUN_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from flowcore import Flow, task
    from flowcore import cache_policies as cp
    from flowcore.executors import LocalDaskExecutor, LocalExecutor
    from flowcore.locking import FileSystemLockManager, MemoryLockManager
    from flowcore.transactions import IsolationLevel, transaction

    workdir, kind, layout = sys.argv[1:4]
    if kind == "memory":
        manager = MemoryLockManager()
    else:
        manager = FileSystemLockManager(os.path.join(workdir, "locks"))
    policy = cp.INPUTS.configure(isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=manager)

    @task(cache_policy=policy)
    def load(src):
        print("LOAD", src, flush=True)
        time.sleep(0.5 if layout == "threads" else 0)
        return src.upper()

    @task
    def join(a, b):
        return a + b

    with Flow("same-run") as flow:
        with transaction("g1"):
            a = load("db")
        if layout == "outside":
            b = load("db", upstream_tasks=[a])
        else:
            with transaction("g2"):
                b = load("db")
        out = join(a, b)
    executor = LocalDaskExecutor("threads", num_workers=2) if layout == "threads" else LocalExecutor()
    for number in (1, 2):
        state = flow.run(cache_store=os.path.join(workdir, "store"), executor=executor)
        loads = sorted(type(s).__name__ for t, s in state.result.items() if t.name == "load")
        print("RUN", number, state.result[out].result, *loads, flush=True)
""")


@pytest.mark.parametrize("layout", ["two-groups", "outside", "threads"])
@pytest.mark.parametrize("kind", ["memory", "filesystem"])
def test_a_flow_run_never_waits_on_a_key_its_own_group_keeps(
    kind: str, layout: str, tmp_path: Path
) -> None:
    (tmp_path / "flow.py").write_text(SAME_RUN_SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLOWCORE__HOME_DIR": str(tmp_path / "home"),
    }
    done = subprocess.run(
        [sys.executable, str(tmp_path / "flow.py"), str(tmp_path), kind, layout],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # the flow run waited on its own group's lock forever before the fix
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("LOAD", "RUN"))]
    assert lines == [
        "LOAD db",
        "LOAD db",  # the second lookup runs uncached: the group's value is staged
        "RUN 1 DBDB Success Success",
        "RUN 2 DBDB Cached Cached",  # g1 committed its value; both find it
    ]
    warnings = [line for line in done.stdout.splitlines() if "would wait for it forever" in line]
    assert len(warnings) == 1, done.stdout[-3000:]
    keeper, waiter = "g1", "g2"
    if layout == "threads" and "of transaction 'g2'" in warnings[0]:
        keeper, waiter = waiter, keeper  # the two groups ran at once: either may lock first
    where = "outside any transaction" if layout == "outside" else f"in transaction {waiter!r}"
    assert f"transaction {keeper!r} in this same flow run" in warnings[0]
    assert f"this task ({where})" in warnings[0]
    assert f"Transaction {keeper!r} committed 1 write(s)" in done.stdout
    assert f"Transaction {waiter!r}" not in done.stdout  # the uncached run staged nothing
