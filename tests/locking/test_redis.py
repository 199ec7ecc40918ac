"""RedisLockManager against a real redis-server: keys, expiry, pickling, processes."""

from __future__ import annotations

import logging
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flowcore.exceptions import MissingExtraError
from flowcore.locking import RedisLockManager
from tests.locking.conftest import LockProcess, start_redis, stop_redis

WAIT = 10.0


@pytest.fixture
def raw(redis_port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=redis_port)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def manager(redis_port: int) -> Iterator[RedisLockManager]:
    manager = RedisLockManager(host="127.0.0.1", port=redis_port)
    yield manager
    manager.close()


def test_close_closes_the_connections_and_a_later_call_opens_new_ones(
    manager: RedisLockManager, raw: redis.Redis, key: str
) -> None:
    assert manager.acquire_lock(key, "run-a", hold_timeout=30)
    connection = manager.client.client_id()
    assert connection in [int(c["id"]) for c in raw.client_list()]

    manager.close()

    # (the server drops a closed connection from its list when it reads the close, which
    # may come a moment after the client's; CI once listed it still)
    deadline = time.monotonic() + WAIT
    while connection in [int(c["id"]) for c in raw.client_list()]:
        assert time.monotonic() < deadline, f"connection {connection} still open"
        time.sleep(0.01)
    assert manager.is_lock_holder(key, "run-a")  # the lock stays; a new connection asks
    manager.release_lock(key, "run-a")


def test_a_lock_is_a_key_holding_the_holder_with_an_expiry(
    manager: RedisLockManager, raw: redis.Redis, key: str
) -> None:
    assert manager.acquire_lock(key, "run-a", hold_timeout=30)

    assert raw.get("flowcore-lock:" + key) == b"run-a"
    assert 0 < raw.pttl("flowcore-lock:" + key) <= 30_000
    manager.release_lock(key, "run-a")
    assert raw.exists("flowcore-lock:" + key) == 0


def test_no_hold_timeout_is_no_expiry(redis_port: int, raw: redis.Redis, key: str) -> None:
    manager = RedisLockManager(host="127.0.0.1", port=redis_port, default_hold_timeout=None)
    assert manager.acquire_lock(key, "run-a")
    assert raw.pttl("flowcore-lock:" + key) == -1
    manager.release_lock(key, "run-a")


def test_the_key_prefix_is_configurable(redis_port: int, raw: redis.Redis, key: str) -> None:
    manager = RedisLockManager(host="127.0.0.1", port=redis_port, key_prefix="team-a:")
    assert manager.acquire_lock(key, "run-a")
    assert raw.get("team-a:" + key) == b"run-a"
    manager.release_lock(key, "run-a")


def test_only_the_holder_can_delete_the_key(
    manager: RedisLockManager, raw: redis.Redis, key: str
) -> None:
    raw.set("flowcore-lock:" + key, "someone-else")
    with pytest.raises(ValueError, match="run-a"):
        manager.release_lock(key, "run-a")
    assert raw.get("flowcore-lock:" + key) == b"someone-else"
    assert manager.is_lock_holder(key, "someone-else")
    manager.release_lock(key, "someone-else")


def test_decoded_responses_work_too(redis_port: int, key: str) -> None:
    manager = RedisLockManager(
        host="127.0.0.1", port=redis_port, client_kwargs={"decode_responses": True}
    )
    assert manager.acquire_lock(key, "run-a")
    assert manager.acquire_lock(key, "run-a", acquire_timeout=0)  # re-entry compares text
    assert manager.is_lock_holder(key, "run-a")
    manager.release_lock(key, "run-a")


def test_pickles_by_its_arguments_without_the_client(manager: RedisLockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a")
    assert manager.client is not None

    copy = pickle.loads(pickle.dumps(manager))

    assert copy._client is None
    assert copy.is_lock_holder(key, "run-a")
    assert repr(copy) == repr(manager)
    assert "password" not in repr(RedisLockManager(password="secret"))
    manager.release_lock(key, "run-a")


def test_a_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` sees when absent
    with pytest.raises(MissingExtraError, match=r"pip install 'flowcore\[redis\]'") as info:
        RedisLockManager()
    assert isinstance(info.value, ImportError)
    assert "RedisLockManager" in str(info.value)


def test_an_unreachable_server_is_an_error_not_a_false(key: str) -> None:
    from tests.servers import free_port

    no_retries = {"retry": Retry(NoBackoff(), 0)}
    manager = RedisLockManager(host="127.0.0.1", port=free_port(), client_kwargs=no_retries)
    with pytest.raises(redis.ConnectionError):
        manager.acquire_lock(key, "run-a", acquire_timeout=0)


@pytest.mark.slow
def test_a_process_waits_for_the_holder_process(
    manager: RedisLockManager, key: str, lock_process: Callable[..., LockProcess]
) -> None:
    holder = lock_process(manager, key, "run-a")
    waiter = lock_process(manager, key, "run-b")

    assert holder.ask("acquire 0") == "True"
    assert waiter.ask("acquire 0") == "False"
    waiter.send(f"acquire {WAIT}")
    assert manager.is_lock_holder(key, "run-a")
    assert holder.ask("release") == "released"

    assert waiter.read() == "True"
    assert manager.is_lock_holder(key, "run-b")


@pytest.mark.slow
def test_a_killed_holder_process_frees_its_key_at_the_hold_timeout(
    manager: RedisLockManager, key: str, lock_process: Callable[..., LockProcess]
) -> None:
    holder = lock_process(manager, key, "run-a", hold=0.5)
    assert holder.ask("acquire 0") == "True"

    holder.kill()

    # Redis cannot see the death; the key's expiry frees it
    assert manager.acquire_lock(key, "run-b", acquire_timeout=WAIT) is True


def _wait_for_warning(logs: pytest.LogCaptureFixture, text: str) -> logging.LogRecord:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for record in logs.records:
            if record.levelno == logging.WARNING and text in record.getMessage():
                return record
        time.sleep(0.02)
    raise AssertionError(f"no WARNING with {text!r} in {[r.getMessage() for r in logs.records]}")


@pytest.mark.slow
def test_a_lease_survives_renewal_errors_and_notices_the_lost_key(
    tmp_path: Path, key: str, logs: pytest.LogCaptureFixture
) -> None:
    from tests.servers import free_port

    port = free_port()
    server = start_redis(tmp_path, port)
    no_retries = {"retry": Retry(NoBackoff(), 0)}
    manager = RedisLockManager(host="127.0.0.1", port=port, client_kwargs=no_retries)
    try:
        lease = manager.hold(key, "run-a", hold_timeout=0.6)
        stop_redis(server)  # the server goes away (and its keys with it)

        failed = _wait_for_warning(logs, "Could not renew the lock")
        assert repr(key) in failed.getMessage() and "'run-a'" in failed.getMessage()
        assert not lease.lost  # an error is not a verdict: the renewal thread carries on

        server = start_redis(tmp_path, port)  # back, without the key

        lost = _wait_for_warning(logs, "another run may have entered")
        assert repr(key) in lost.getMessage()
        assert lease.lost
        lease.release()  # the key is gone: no error, no second warning of the loss
        assert len([r for r in logs.records if "another run may" in r.getMessage()]) == 1
    finally:
        stop_redis(server)
