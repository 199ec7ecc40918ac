"""FileSystemLockManager: the lock files, stale locks, and real processes contending."""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flowcore.locking import FileSystemLockManager
from flowcore.locking.filesystem import lock_file_name
from tests.locking.conftest import LockProcess

WAIT = 10.0


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(path: Path, **fields: object) -> None:
    record = {"holder": "ghost", "pid": os.getpid(), "hostname": socket.gethostname()}
    record["expires_at"] = time.time() + 3600
    record.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_a_lock_is_a_json_file_named_after_the_key(tmp_path: Path, key: str) -> None:
    manager = FileSystemLockManager(tmp_path / "a" / "b")  # created on first use
    path = tmp_path / "a" / "b" / lock_file_name(key)

    assert manager.acquire_lock(key, "run-a", hold_timeout=60)

    record = json.loads(path.read_text())
    assert record["holder"] == "run-a"
    assert record["pid"] == os.getpid()
    assert record["hostname"] == socket.gethostname()
    assert record["expires_at"] > time.time()
    manager.release_lock(key, "run-a")
    assert not path.exists()


def test_file_names_are_safe_distinct_and_readable() -> None:
    names = {lock_file_name(k) for k in ["a/b", "a_b", "a b", "../etc/passwd", "", "é"]}
    assert len(names) == 6
    for name in names:
        assert "/" not in name and not name.startswith(".") and name.endswith(".lock")
    assert lock_file_name("cache-key-1").startswith("cache-key-1-")
    assert len(lock_file_name("x" * 10_000)) < 120


def test_a_lock_without_hold_timeout_has_no_expiry(tmp_path: Path, key: str) -> None:
    manager = FileSystemLockManager(tmp_path, default_hold_timeout=None)
    assert manager.acquire_lock(key, "run-a")
    assert json.loads((tmp_path / lock_file_name(key)).read_text())["expires_at"] is None


def test_an_expired_lock_of_another_holder_is_broken(tmp_path: Path, key: str) -> None:
    manager = FileSystemLockManager(tmp_path)
    _write_lock(tmp_path / lock_file_name(key), expires_at=time.time() - 1)

    assert not manager.is_locked(key)
    assert manager.acquire_lock(key, "run-a", acquire_timeout=0)

    assert manager.is_lock_holder(key, "run-a")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".guard", lock_file_name(key)]


def test_a_lock_of_a_dead_process_on_this_host_is_broken(tmp_path: Path, key: str) -> None:
    manager = FileSystemLockManager(tmp_path)
    _write_lock(tmp_path / lock_file_name(key), pid=_dead_pid())

    assert not manager.is_locked(key)
    assert not manager.is_lock_holder(key, "ghost")
    assert manager.acquire_lock(key, "run-a", acquire_timeout=0)


def test_a_lock_whose_pid_a_newer_process_took_is_broken(tmp_path: Path, key: str) -> None:
    # the holder wrote the file an hour ago, died, and its pid went to a process started
    # since: that process does not hold the lock (without a hold timeout it never expires)
    manager = FileSystemLockManager(tmp_path, default_hold_timeout=None)
    newcomer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = tmp_path / lock_file_name(key)
        _write_lock(path, pid=newcomer.pid, expires_at=None, written_at=time.time() - 3600)
        assert not manager.is_locked(key)
        assert manager.acquire_lock(key, "run-a", acquire_timeout=0)
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["written_at"] <= time.time()
        # written by a live process of this host since it started: held
        _write_lock(path, pid=newcomer.pid, expires_at=None, written_at=time.time())
        assert manager.is_lock_holder(key, "ghost")
        assert not manager.acquire_lock(key, "run-b", acquire_timeout=0)
    finally:
        newcomer.kill()
        newcomer.wait()


def test_written_at_must_be_a_time(
    tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    manager = FileSystemLockManager(tmp_path)
    _write_lock(tmp_path / lock_file_name(key), written_at="yesterday")
    with caplog.at_level(logging.WARNING, logger="flowcore"):
        assert manager.acquire_lock(key, "run-a", acquire_timeout=0)
    assert "'written_at' is 'yesterday', not a time or null" in caplog.text


def test_a_dead_pid_of_another_host_is_not_judged(tmp_path: Path, key: str) -> None:
    manager = FileSystemLockManager(tmp_path)
    _write_lock(tmp_path / lock_file_name(key), pid=_dead_pid(), hostname="another-host")

    assert manager.is_lock_holder(key, "ghost")
    assert manager.acquire_lock(key, "run-a", acquire_timeout=0) is False


def test_the_same_holder_in_a_new_process_takes_over_a_dead_ones_lock(
    tmp_path: Path, key: str
) -> None:
    manager = FileSystemLockManager(tmp_path)
    _write_lock(tmp_path / lock_file_name(key), holder="run-a", pid=_dead_pid())

    assert manager.acquire_lock(key, "run-a", acquire_timeout=0)

    assert json.loads((tmp_path / lock_file_name(key)).read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]"])
def test_an_unreadable_lock_file_is_stale(
    tmp_path: Path, key: str, content: bytes, logs: pytest.LogCaptureFixture
) -> None:
    # what a writer killed between creating and filling its lock file leaves behind
    manager = FileSystemLockManager(tmp_path)
    (tmp_path / lock_file_name(key)).write_bytes(content)

    assert not manager.is_locked(key)
    with pytest.raises(ValueError):
        manager.release_lock(key, "run-a")
    assert manager.acquire_lock(key, "run-a", acquire_timeout=0)
    assert any("breaking it as stale" in r.getMessage() for r in logs.records)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"pid": "abc"}, "'pid' is 'abc', not a process id"),
        ({"pid": None}, "'pid' is None, not a process id"),
        ({"pid": True}, "'pid' is True, not a process id"),
        ({"expires_at": "soon", "hostname": "another-host"}, "'expires_at' is 'soon'"),
        ({"expires_at": float("nan"), "hostname": "another-host"}, "'expires_at' is nan"),
        ({"holder": 7}, "'holder' is 7, not a string"),
    ],
)
def test_a_lock_file_with_wrong_field_types_is_broken_with_a_warning(
    tmp_path: Path,
    key: str,
    fields: dict[str, object],
    problem: str,
    logs: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / lock_file_name(key)
    _write_lock(path, **fields)
    manager = FileSystemLockManager(tmp_path)

    assert not manager.is_locked(key)
    assert not manager.renew_lock(key, "ghost")
    assert manager.acquire_lock(key, "run-a", acquire_timeout=0)

    assert manager.is_lock_holder(key, "run-a")
    warnings = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and problem in warnings[0]


def test_a_lock_file_without_a_field_is_broken_with_a_warning(
    tmp_path: Path, key: str, logs: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / lock_file_name(key)
    _write_lock(path)
    path.write_text(
        json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "pid"})
    )

    assert FileSystemLockManager(tmp_path).acquire_lock(key, "run-a", acquire_timeout=0)
    assert any("it has no 'pid'" in r.getMessage() for r in logs.records)


def test_a_directory_in_place_of_a_lock_file_is_an_error_left_alone(
    tmp_path: Path, key: str
) -> None:
    path = tmp_path / lock_file_name(key)
    (path / "someones").mkdir(parents=True)
    manager = FileSystemLockManager(tmp_path)

    for call in (
        lambda: manager.acquire_lock(key, "run-a", acquire_timeout=0),
        lambda: manager.is_locked(key),
        lambda: manager.release_lock(key, "run-a"),
    ):
        with pytest.raises(IsADirectoryError, match="is a directory.*remove it") as info:
            call()
        assert str(path) in str(info.value)
    assert (path / "someones").is_dir()
    path.joinpath("someones").rmdir()
    path.rmdir()
    assert manager.acquire_lock(key, "run-a", acquire_timeout=0)


def test_pickles_by_its_arguments(tmp_path: Path, key: str) -> None:
    manager = FileSystemLockManager(tmp_path / "locks", default_hold_timeout=12)
    assert manager.acquire_lock(key, "run-a")

    copy = pickle.loads(pickle.dumps(manager))

    assert (
        repr(copy)
        == repr(manager)
        == (f"FileSystemLockManager({str(tmp_path / 'locks')!r}, default_hold_timeout=12.0)")
    )
    assert copy.is_lock_holder(key, "run-a")


def test_a_relative_lock_dir_is_fixed_at_construction(
    tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    manager = FileSystemLockManager("locks")
    assert manager.lock_dir == tmp_path / "locks"
    assert manager.acquire_lock(key, "run-a")

    monkeypatch.chdir(tmp_path.parent)
    copy = pickle.loads(pickle.dumps(manager))

    assert copy.is_lock_holder(key, "run-a")


# -- real processes -------------------------------------------------------------------


@pytest.mark.slow
def test_a_process_waits_for_the_holder_process(
    tmp_path: Path, key: str, lock_process: Callable[..., LockProcess]
) -> None:
    manager = FileSystemLockManager(tmp_path)
    holder = lock_process(manager, key, "run-a")
    waiter = lock_process(manager, key, "run-b")

    assert holder.ask("acquire 0") == "True"
    assert waiter.ask("acquire 0") == "False"
    waiter.send(f"acquire {WAIT}")  # blocks in the child
    assert manager.is_lock_holder(key, "run-a")
    assert holder.ask("release") == "released"

    assert waiter.read() == "True"
    assert manager.is_lock_holder(key, "run-b")
    assert holder.ask("holder") == "False"


@pytest.mark.slow
def test_a_killed_holder_process_frees_its_key(
    tmp_path: Path, key: str, lock_process: Callable[..., LockProcess]
) -> None:
    manager = FileSystemLockManager(tmp_path)  # hold timeout 300 s: only the dead pid frees it
    holder = lock_process(manager, key, "run-a")
    assert holder.ask("acquire 0") == "True"
    assert manager.acquire_lock(key, "run-b", acquire_timeout=0) is False

    holder.kill()

    assert manager.acquire_lock(key, "run-b", acquire_timeout=0) is True


@pytest.mark.slow
def test_a_killed_holder_not_yet_reaped_frees_its_key(
    tmp_path: Path, key: str, lock_process: Callable[..., LockProcess]
) -> None:
    manager = FileSystemLockManager(tmp_path)
    holder = lock_process(manager, key, "run-a")
    assert holder.ask("acquire 0") == "True"

    holder.kill(reap=False)  # a zombie: os.kill(pid, 0) still succeeds

    assert manager.acquire_lock(key, "run-b", acquire_timeout=WAIT) is True


@pytest.mark.slow
def test_processes_racing_to_break_a_stale_lock_leave_one_winner(
    tmp_path: Path, key: str, lock_process: Callable[..., LockProcess]
) -> None:
    manager = FileSystemLockManager(tmp_path)
    _write_lock(tmp_path / lock_file_name(key), expires_at=time.time() - 1)
    racers = [lock_process(manager, key, f"run-{i}") for i in range(3)]

    for racer in racers:
        racer.send("acquire 0")
    answers = [racer.read() for racer in racers]

    assert sorted(answers) == ["False", "False", "True"]
    winner = f"run-{answers.index('True')}"
    assert manager.is_lock_holder(key, winner)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".lock")] == [lock_file_name(key)]
