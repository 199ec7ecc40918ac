"""Locks for the processes of one host: one small file per held key.

Layout of ``lock_dir``::

    <readable part of the key>-<sha256 of the key, 32 hex>.lock    one per held key
        {"holder": "...", "pid": 4242, "hostname": "box", "expires_at": 1718000000.5,
         "written_at": 1717999940.5}
    .guard                                                        empty; see below

``expires_at`` is wall-clock time (``time.time()``, comparable between processes) or null
for a lock without a hold timeout. A lock file is *stale*, and the next acquirer may break
it, when

* it has expired, or
* it was written on this host (same host name) by a process that no longer
  runs (``os.kill(pid, 0)`` fails, or the process is a zombie, or the process with that
  pid started after ``written_at``, the time the holder last wrote the file: its pid was
  reused after it died), or
* it is not a lock record: not JSON, or fields of the wrong type (its writer died between
  creating and filling it, or something else wrote it). Breaking one logs a WARNING naming
  the file.

A *directory* at a lock file's path is never broken (it is not flowcore's, and may hold
someone's files): every operation on that key raises ``IsADirectoryError`` naming it.

A renewal rewrites ``expires_at`` (now + hold timeout) and keeps the rest: it writes the
whole record to ``<lock file name>.renew-<uuid>`` and renames that over the lock file, so a
reader sees the old record or the new one, never half of one (a process killed between the
two leaves the temporary file behind; nothing reads it).

Every read-check-write of a lock file (acquire, break, renew, release, and the queries)
runs under an exclusive ``flock`` of ``.guard``, held for a few system calls only. That
makes breaking a stale lock race-free between any number of processes: the breaker re-reads
the file under the guard, renames it to a unique tombstone name, deletes the tombstone and
creates the new lock with ``O_CREAT | O_EXCL``; no other process can put a fresh lock in
between and lose it, and no renewal can revive a lock that was just broken. The kernel drops the guard when its process dies, so a killed process never leaves it
held. (Without ``fcntl``, i.e. on Windows, there is no guard; locks still work but breaking
a stale lock is then only as safe as ``O_EXCL`` and rename make it.)

Waiting is polling, with a pause growing from 5 ms to 0.1 s. Identity is by holder string:
any process may release a lock its holder id holds. A recycled pid can keep a dead
holder's lock alive until ``expires_at``; the hold timeout is the bound.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowcore.locking.base import DEFAULT_HOLD_TIMEOUT, LockManager, poll
from flowcore.utilities.logging import get_logger
from flowcore.utilities.processes import host_name, pid_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileSystemLockManager"]

_HOSTNAME = host_name()
_LOGGER = get_logger("locking")
_GUARD = ".guard"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def lock_file_name(key: str) -> str:
    """The file name of ``key``'s lock: a readable part plus a hash of the whole key.

    >>> lock_file_name("tasks/add: 1+2")
    'tasks_add_1_2-c3fe654ab229565f70df27fe01afdb1c.lock'
    """
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    readable = _UNSAFE.sub("_", key)[:60].strip("._-")
    return f"{readable}-{digest}.lock" if readable else f"{digest}.lock"


def _is_stale(record: dict[str, Any] | None, now: float) -> bool:
    """Whether a lock record (None: no valid one) no longer holds its key."""
    if record is None:
        return True
    expires_at = record["expires_at"]
    if expires_at is not None and expires_at <= now:
        return True
    return bool(
        record["hostname"] == _HOSTNAME
        and not pid_alive(record["pid"], since=record.get("written_at"))
    )


def _record_problem(data: Any) -> str | None:
    """What makes ``data`` (a parsed lock file) not a lock record; None if it is one.

    >>> _record_problem({"holder": "h", "pid": 42, "hostname": "box", "expires_at": None})
    >>> _record_problem({"holder": "h", "pid": "abc", "hostname": "box", "expires_at": 1.5})
    "'pid' is 'abc', not a process id"
    """
    if not isinstance(data, dict):
        return f"it holds a {type(data).__name__}, not an object"
    for field in ("holder", "pid", "hostname", "expires_at"):
        if field not in data:
            return f"it has no {field!r}"
    for field in ("holder", "hostname"):
        if not isinstance(data[field], str):
            return f"{field!r} is {data[field]!r}, not a string"
    pid = data["pid"]
    if not (_is_number(pid) and isinstance(pid, int) and 0 < pid < 2**31):
        return f"'pid' is {pid!r}, not a process id"
    for field in ("expires_at", "written_at"):  # (written_at: absent from older files)
        when = data.get(field)
        if when is not None and not (_is_number(when) and math.isfinite(when)):
            return f"{field!r} is {when!r}, not a time or null"
    return None


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (true and false are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class FileSystemLockManager(LockManager):
    """Locks shared by the processes of one host, as files in ``lock_dir``.

    Use a directory on a local file system that every process can write (it is created on
    first use; a relative path is made absolute at once). Pickles by its constructor
    arguments.

    Args:
        lock_dir: the directory of the lock files.
        default_hold_timeout: seconds until an unreleased lock expires when ``acquire_lock``
            is given no ``hold_timeout``; None: only a dead holder process frees it.
    """

    def __init__(
        self,
        lock_dir: str | os.PathLike[str],
        default_hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
    ) -> None:
        super().__init__(default_hold_timeout)
        self.lock_dir = Path(lock_dir).expanduser().absolute()  # the same in every cwd

    # -- the contract ------------------------------------------------------------------

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        hold = self._hold_seconds(hold_timeout)
        path = self.lock_dir / lock_file_name(key)
        return poll(lambda: self._try_acquire(path, holder, hold), acquire_timeout)

    def renew_lock(self, key: str, holder: str, hold_timeout: float | None = None) -> bool:
        hold = self._hold_seconds(hold_timeout)
        path = self.lock_dir / lock_file_name(key)
        with self._guard():
            now = time.time()
            record = _read(path)
            if record is None or _is_stale(record, now) or record.get("holder") != holder:
                return False
            record["expires_at"] = None if hold is None else now + hold
            record["written_at"] = now
            _replace(path, record)
            return True

    def release_lock(self, key: str, holder: str) -> None:
        path = self.lock_dir / lock_file_name(key)
        with self._guard():
            record = _read(path)
            if record is None or _is_stale(record, time.time()) or record.get("holder") != holder:
                raise ValueError(f"No lock on key {key!r} is held by holder {holder!r}")
            path.unlink()

    def is_locked(self, key: str) -> bool:
        return self._live_record(key) is not None

    def is_lock_holder(self, key: str, holder: str) -> bool:
        record = self._live_record(key)
        return record is not None and record.get("holder") == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        return poll(lambda: not self.is_locked(key), timeout)

    # -- files -------------------------------------------------------------------------

    def _try_acquire(self, path: Path, holder: str, hold: float | None) -> bool:
        with self._guard():
            now = time.time()
            record, problem = _load(path)
            exists = record is not None or problem is not None
            if exists and not _is_stale(record, now):
                return record is not None and record.get("holder") == holder
            if problem is not None:
                _LOGGER.warning(
                    f"FileSystemLockManager: the lock file {str(path)!r} is not a lock record "
                    f"({problem}); breaking it as stale"
                )
            if exists:
                tombstone = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex}")
                os.rename(path, tombstone)
                os.unlink(tombstone)
            content = {
                "holder": holder,
                "pid": os.getpid(),
                "hostname": _HOSTNAME,
                "expires_at": None if hold is None else now + hold,
                "written_at": now,
            }
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            try:
                os.write(fd, json.dumps(content).encode("utf-8"))
            finally:
                os.close(fd)
            return True

    def _live_record(self, key: str) -> dict[str, Any] | None:
        with self._guard():
            record = _read(self.lock_dir / lock_file_name(key))
            return None if _is_stale(record, time.time()) else record

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - Windows
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            yield
            return
        guard = self.lock_dir / _GUARD
        try:
            fd = os.open(guard, os.O_CREAT | os.O_RDWR, 0o644)
        except FileNotFoundError:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(guard, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def __repr__(self) -> str:
        return (
            f"FileSystemLockManager({str(self.lock_dir)!r}, "
            f"default_hold_timeout={self.default_hold_timeout!r})"
        )

    def __reduce__(self) -> tuple[type[FileSystemLockManager], tuple[str, float | None]]:
        return (type(self), (str(self.lock_dir), self.default_hold_timeout))


def _replace(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` over the lock file at ``path`` atomically (temporary name, rename)."""
    temporary = path.with_name(f"{path.name}.renew-{uuid.uuid4().hex}")
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        try:
            os.write(fd, json.dumps(record).encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, Any] | None:
    """The lock record at ``path``; None if there is none or the file is not one."""
    return _load(path)[0]


def _load(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The lock record at ``path``, else None and what makes the file there not one (None:
    there is no file). A directory there is an error: it is never broken."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if path.is_dir():
            raise IsADirectoryError(
                f"FileSystemLockManager: {str(path)!r} is a directory, where a lock file "
                "belongs; flowcore does not delete it: remove it, or give the manager "
                "another lock_dir"
            ) from exc
        return None, f"it cannot be read: {exc}"
    if not raw.strip():
        return None, "it is empty"
    try:
        data = json.loads(raw)
    except ValueError:
        return None, "it is not JSON"
    problem = _record_problem(data)
    return (data, None) if problem is None else (None, problem)
