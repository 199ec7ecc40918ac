"""The LockManager contract (and the leases built on it), run for every manager against its
real backend.

Memory (threads), file system (a temporary directory), Redis (a redis-server started for
the session) and Dask (a LocalCluster of two worker processes; these tests call it from
the test process through a client).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

import pytest

from flowcore.locking import Lease, LockManager

WAIT = 10.0  # bound on "eventually": generous, only reached when something is broken


def test_acquire_is_locked_and_release(manager: LockManager, key: str) -> None:
    assert not manager.is_locked(key)
    assert manager.acquire_lock(key, "run-a") is True
    assert manager.is_locked(key)
    assert manager.is_lock_holder(key, "run-a")
    assert not manager.is_lock_holder(key, "run-b")

    manager.release_lock(key, "run-a")

    assert not manager.is_locked(key)
    assert not manager.is_lock_holder(key, "run-a")


def test_keys_are_independent(manager: LockManager, key: str) -> None:
    other = key + "-other"
    assert manager.acquire_lock(key, "run-a")
    assert not manager.is_locked(other)
    assert manager.acquire_lock(other, "run-b", acquire_timeout=0)
    manager.release_lock(key, "run-a")
    assert manager.is_lock_holder(other, "run-b")
    manager.release_lock(other, "run-b")


@pytest.mark.parametrize("suffix", ["a/b: c d", "ünïcödé ✓", "x" * 300, "..", ""])
def test_any_string_is_a_key(manager: LockManager, key: str, suffix: str) -> None:
    assert manager.acquire_lock(key + suffix, "run-a", acquire_timeout=0)
    assert manager.is_lock_holder(key + suffix, "run-a")
    assert not manager.is_locked(key + suffix + "/other")
    manager.release_lock(key + suffix, "run-a")
    assert not manager.is_locked(key + suffix)


def test_the_same_holder_reacquires_without_counting(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a")
    assert manager.acquire_lock(key, "run-a", acquire_timeout=0) is True
    assert manager.acquire_lock(key, "run-a") is True

    manager.release_lock(key, "run-a")  # one release frees it, however often it was taken

    assert not manager.is_locked(key)
    with pytest.raises(ValueError):
        manager.release_lock(key, "run-a")


def test_another_holder_times_out(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a")

    assert manager.acquire_lock(key, "run-b", acquire_timeout=0) is False
    assert manager.acquire_lock(key, "run-b", acquire_timeout=0.1) is False

    assert manager.is_lock_holder(key, "run-a")
    assert not manager.is_lock_holder(key, "run-b")
    manager.release_lock(key, "run-a")
    assert manager.acquire_lock(key, "run-b", acquire_timeout=0) is True
    manager.release_lock(key, "run-b")


def test_release_by_a_non_holder_is_a_value_error(manager: LockManager, key: str) -> None:
    with pytest.raises(ValueError, match="run-a") as unlocked:
        manager.release_lock(key, "run-a")
    assert key in str(unlocked.value)

    assert manager.acquire_lock(key, "run-a")
    with pytest.raises(ValueError, match="run-b") as other:
        manager.release_lock(key, "run-b")
    assert key in str(other.value)

    assert manager.is_lock_holder(key, "run-a")  # the failed release changed nothing
    manager.release_lock(key, "run-a")


def test_a_blocked_acquire_gets_the_lock_after_release(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a")
    outcome: list[bool] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(manager.acquire_lock(key, "run-b", acquire_timeout=WAIT))
    )
    waiter.start()
    assert manager.is_lock_holder(key, "run-a")  # run-b cannot have it yet

    manager.release_lock(key, "run-a")
    waiter.join(WAIT + 5)

    assert outcome == [True]
    assert manager.is_lock_holder(key, "run-b")
    manager.release_lock(key, "run-b")


def test_wait_for_lock(manager: LockManager, key: str) -> None:
    assert manager.wait_for_lock(key, timeout=0) is True  # nobody holds it
    assert manager.acquire_lock(key, "run-a")

    assert manager.wait_for_lock(key, timeout=0) is False
    assert manager.wait_for_lock(key, timeout=0.1) is False
    assert manager.is_lock_holder(key, "run-a")  # waiting does not take or break the lock

    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(manager.wait_for_lock(key)))
    waiter.start()
    manager.release_lock(key, "run-a")
    waiter.join(WAIT)

    assert outcome == [True]
    assert not manager.is_locked(key)  # wait_for_lock did not acquire


def test_a_lock_expires_after_its_hold_timeout(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a", hold_timeout=0.3)

    assert manager.acquire_lock(key, "run-b", acquire_timeout=WAIT) is True

    assert manager.is_lock_holder(key, "run-b")
    assert not manager.is_lock_holder(key, "run-a")
    with pytest.raises(ValueError, match="run-a"):
        manager.release_lock(key, "run-a")  # an expired holder cannot release the new lock
    assert manager.is_lock_holder(key, "run-b")
    manager.release_lock(key, "run-b")


def test_an_expired_lock_is_not_locked(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a", hold_timeout=0.2)

    assert manager.wait_for_lock(key, timeout=WAIT) is True

    assert not manager.is_locked(key)
    assert not manager.is_lock_holder(key, "run-a")
    with pytest.raises(ValueError):
        manager.release_lock(key, "run-a")


def test_the_default_hold_timeout_applies(
    make_manager: Callable[..., LockManager], key: str
) -> None:
    manager = make_manager(default_hold_timeout=0.2)
    assert manager.default_hold_timeout == 0.2
    assert manager.acquire_lock(key, "run-a")

    assert manager.acquire_lock(key, "run-b", acquire_timeout=WAIT) is True
    manager.release_lock(key, "run-b")


def test_a_release_ends_the_hold_timeout(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a", hold_timeout=0.2)
    manager.release_lock(key, "run-a")
    assert manager.acquire_lock(key, "run-b", hold_timeout=60)

    assert manager.wait_for_lock(key, timeout=0.4) is False  # run-a's expiry does not free it

    assert manager.is_lock_holder(key, "run-b")
    manager.release_lock(key, "run-b")


def test_threads_contending_hold_the_lock_one_at_a_time(manager: LockManager, key: str) -> None:
    inside: list[str] = []
    overlaps: list[list[str]] = []
    entries: list[str] = []
    guard = threading.Lock()

    def work(holder: str) -> None:
        for _ in range(4):
            assert manager.acquire_lock(key, holder, acquire_timeout=WAIT)
            with guard:
                inside.append(holder)
                entries.append(holder)
                if len(inside) > 1:
                    overlaps.append(list(inside))
            time.sleep(0.002)
            with guard:
                inside.remove(holder)
            manager.release_lock(key, holder)

    threads = [threading.Thread(target=work, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)

    assert overlaps == []
    assert sorted(entries) == sorted(f"run-{i}" for i in range(4) for _ in range(4))
    assert not manager.is_locked(key)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_a_hold_timeout_must_be_positive(manager: LockManager, key: str, bad: float) -> None:
    with pytest.raises(ValueError, match="hold_timeout"):
        manager.acquire_lock(key, "run-a", hold_timeout=bad)
    assert not manager.is_locked(key)


def test_an_acquire_timeout_must_not_be_negative(manager: LockManager, key: str) -> None:
    with pytest.raises(ValueError, match="timeout"):
        manager.acquire_lock(key, "run-a", acquire_timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        manager.wait_for_lock(key, timeout=-1)


@pytest.mark.parametrize("bad", [0, -5])
def test_a_default_hold_timeout_must_be_positive(
    make_manager: Callable[..., LockManager], bad: float
) -> None:
    with pytest.raises(ValueError, match="default_hold_timeout"):
        make_manager(default_hold_timeout=bad)


def test_no_default_hold_timeout_means_no_expiry_by_time(
    make_manager: Callable[..., LockManager], key: str
) -> None:
    manager = make_manager(default_hold_timeout=None)
    assert manager.acquire_lock(key, "run-a")
    assert manager.wait_for_lock(key, timeout=0.3) is False
    assert manager.is_lock_holder(key, "run-a")
    manager.release_lock(key, "run-a")


def test_repr_names_the_manager(manager: LockManager) -> None:
    assert repr(manager).startswith(type(manager).__name__ + "(")
    assert "default_hold_timeout=300.0" in repr(manager)


# -- renew_lock -----------------------------------------------------------------------


def test_renew_lock_extends_the_lock_from_now(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a", hold_timeout=0.5)
    acquired = time.monotonic()

    assert manager.renew_lock(key, "run-a", hold_timeout=WAIT) is True
    time.sleep(max(0.0, acquired + 0.8 - time.monotonic()))  # past the first 0.5 s

    assert manager.is_lock_holder(key, "run-a")
    assert manager.acquire_lock(key, "run-b", acquire_timeout=0) is False

    # a renewal counts from now, so it can shorten too; not renewed again, the lock expires
    assert manager.renew_lock(key, "run-a", hold_timeout=0.3) is True
    assert manager.wait_for_lock(key, timeout=WAIT) is True
    assert not manager.is_lock_holder(key, "run-a")


def test_renew_lock_uses_the_default_hold_timeout(
    make_manager: Callable[..., LockManager], key: str
) -> None:
    manager = make_manager(default_hold_timeout=0.3)
    assert manager.acquire_lock(key, "run-a", hold_timeout=60)

    assert manager.renew_lock(key, "run-a") is True

    assert manager.wait_for_lock(key, timeout=WAIT) is True  # 0.3 s from the renewal


def test_renew_lock_without_a_default_hold_timeout_ends_the_expiry(
    make_manager: Callable[..., LockManager], key: str
) -> None:
    manager = make_manager(default_hold_timeout=None)
    assert manager.acquire_lock(key, "run-a", hold_timeout=0.2)

    assert manager.renew_lock(key, "run-a") is True

    assert manager.wait_for_lock(key, timeout=0.4) is False  # twice its first hold timeout
    assert manager.is_lock_holder(key, "run-a")
    manager.release_lock(key, "run-a")


def test_renew_lock_by_a_non_holder_is_false_and_changes_nothing(
    manager: LockManager, key: str
) -> None:
    assert manager.renew_lock(key, "run-a") is False  # nobody holds it
    assert not manager.is_locked(key)  # and renewing did not take it

    assert manager.acquire_lock(key, "run-a", hold_timeout=60)
    assert manager.renew_lock(key, "run-b", hold_timeout=0.1) is False
    assert manager.is_lock_holder(key, "run-a")

    manager.release_lock(key, "run-a")
    assert manager.renew_lock(key, "run-a") is False
    assert not manager.is_locked(key)


def test_renew_lock_after_expiry_is_false(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a", hold_timeout=0.2)
    assert manager.wait_for_lock(key, timeout=WAIT) is True

    assert manager.renew_lock(key, "run-a") is False
    assert not manager.is_locked(key)

    assert manager.acquire_lock(key, "run-a", hold_timeout=0.2)
    assert manager.acquire_lock(key, "run-b", acquire_timeout=WAIT) is True  # after expiry

    assert manager.renew_lock(key, "run-a") is False
    assert manager.is_lock_holder(key, "run-b")
    manager.release_lock(key, "run-b")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_a_renewal_hold_timeout_must_be_positive(
    manager: LockManager, key: str, bad: float
) -> None:
    assert manager.acquire_lock(key, "run-a", hold_timeout=60)
    with pytest.raises(ValueError, match="hold_timeout"):
        manager.renew_lock(key, "run-a", hold_timeout=bad)
    assert manager.is_lock_holder(key, "run-a")
    manager.release_lock(key, "run-a")


# -- leases ---------------------------------------------------------------------------


def _renewal_threads(key: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"flowcore-lease-renewal {key!r}"]


def _seen_free_or_taken(manager: LockManager, key: str, seconds: float) -> list[str]:
    """Another party polling ``key`` for ``seconds``: each time it found the key free or
    managed to take it (a correct lease makes this empty)."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not manager.is_locked(key):
            seen.append("free")
        if manager.acquire_lock(key, "run-b", acquire_timeout=0):
            seen.append("taken")
            manager.release_lock(key, "run-b")
        time.sleep(0.01)
    return seen


def test_a_lease_keeps_the_lock_past_its_hold_timeout(manager: LockManager, key: str) -> None:
    lease = manager.hold(key, "run-a", hold_timeout=0.6)
    assert isinstance(lease, Lease)
    assert len(_renewal_threads(key)) == 1

    observed: list[list[str]] = []
    poller = threading.Thread(
        target=lambda: observed.append(_seen_free_or_taken(manager, key, 2.0))
    )
    poller.start()
    poller.join(WAIT * 3)

    assert observed == [[]]
    assert manager.is_lock_holder(key, "run-a")
    assert not lease.lost
    lease.release()
    assert not manager.is_locked(key)  # at once: the renewal thread was stopped, not awaited
    assert _renewal_threads(key) == []
    assert lease.released and not lease.lost


def test_hold_is_a_context_manager(manager: LockManager, key: str) -> None:
    with manager.hold(key, "run-a", hold_timeout=60) as lease:
        assert manager.is_lock_holder(key, "run-a")
        assert (lease.key, lease.holder, lease.hold_timeout) == (key, "run-a", 60.0)
        assert not lease.released
        assert repr(lease) == f"Lease(key={key!r}, holder='run-a', hold_timeout=60.0, held)"

    assert not manager.is_locked(key)
    assert lease.released and not lease.lost
    assert _renewal_threads(key) == []


def test_a_lease_uses_the_default_hold_timeout(
    make_manager: Callable[..., LockManager], key: str
) -> None:
    manager = make_manager(default_hold_timeout=45)
    with manager.hold(key, "run-a") as lease:
        assert lease.hold_timeout == 45.0


def test_hold_times_out_with_a_timeout_error(manager: LockManager, key: str) -> None:
    assert manager.acquire_lock(key, "run-a")

    for timeout in (0, 0.1):
        with pytest.raises(TimeoutError) as info:
            manager.hold(key, "run-b", acquire_timeout=timeout)
        message = str(info.value)
        assert repr(key) in message and "'run-b'" in message
        assert f"acquire_timeout={timeout!r}" in message

    assert manager.is_lock_holder(key, "run-a")
    assert _renewal_threads(key) == []
    manager.release_lock(key, "run-a")


def test_hold_validates_the_hold_timeout(manager: LockManager, key: str) -> None:
    with pytest.raises(ValueError, match="hold_timeout"):
        manager.hold(key, "run-a", hold_timeout=0)
    assert not manager.is_locked(key)


def test_a_lease_without_a_hold_timeout_needs_no_renewal(
    make_manager: Callable[..., LockManager], key: str
) -> None:
    manager = make_manager(default_hold_timeout=None)
    with manager.hold(key, "run-a") as lease:
        assert lease.hold_timeout is None
        assert _renewal_threads(key) == []
        assert manager.wait_for_lock(key, timeout=0.2) is False
    assert not manager.is_locked(key)


def test_a_lost_lease_warns_once(
    manager: LockManager, key: str, logs: pytest.LogCaptureFixture
) -> None:
    lease = manager.hold(key, "run-a", hold_timeout=0.6)
    manager.release_lock(key, "run-a")  # someone breaks the lock...
    assert manager.acquire_lock(key, "run-b", hold_timeout=60)  # ...and another run enters

    deadline = time.monotonic() + WAIT
    while not lease.lost and time.monotonic() < deadline:
        time.sleep(0.02)

    assert lease.lost
    warnings = [r for r in logs.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert repr(key) in warnings[0].getMessage() and "'run-a'" in warnings[0].getMessage()
    assert "another run may have entered" in warnings[0].getMessage()
    assert _renewal_threads(key) == []  # it stopped renewing

    lease.release()  # no error, no second warning, and run-b's lock stays

    assert [r for r in logs.records if r.levelno == logging.WARNING] == warnings
    assert manager.is_lock_holder(key, "run-b")
    assert repr(lease).endswith("released, lost)")
    manager.release_lock(key, "run-b")


def test_releasing_a_lease_whose_lock_is_gone_is_a_warning(
    manager: LockManager, key: str, logs: pytest.LogCaptureFixture
) -> None:
    lease = manager.hold(key, "run-a", hold_timeout=60)  # next renewal in 20 s: not yet
    manager.release_lock(key, "run-a")

    lease.release()

    assert lease.lost
    (warning,) = [r for r in logs.records if r.levelno == logging.WARNING]
    assert repr(key) in warning.getMessage() and "'run-a'" in warning.getMessage()
    assert "another run may have entered" in warning.getMessage()


def test_releasing_a_lease_twice_releases_once(manager: LockManager, key: str) -> None:
    lease = manager.hold(key, "run-a", hold_timeout=60)
    lease.release()
    assert manager.acquire_lock(key, "run-b", acquire_timeout=0)

    lease.release()

    assert manager.is_lock_holder(key, "run-b")
    assert not lease.lost
    manager.release_lock(key, "run-b")


def test_a_dropped_lease_stops_renewing_and_its_lock_expires(
    manager: LockManager, key: str
) -> None:
    lease = manager.hold(key, "run-a", hold_timeout=0.3)
    del lease
    gc.collect()

    assert manager.wait_for_lock(key, timeout=WAIT) is True
    assert manager.acquire_lock(key, "run-b", acquire_timeout=0)
    manager.release_lock(key, "run-b")
