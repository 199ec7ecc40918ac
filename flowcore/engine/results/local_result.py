"""``LocalResult``: values stored as files under a directory, written atomically and durably.

Layout: a location is a path relative to ``dir`` (or, for a literal absolute template, an
absolute path under that template's literal directory); the full locations returned by
``write``, ``write_at`` and ``write_bytes_at`` are absolute paths that ``read``,
``exists`` and ``delete`` accept back. Every location is checked after ``realpath`` of both
the directory and the candidate, so a symlink inside ``dir`` cannot lead a read or a write
out of it.

A write goes through a temporary file beside the target, ``.<name>.<12 hex>.tmp``:

1. write the bytes, flush and ``fsync`` the temporary file;
2. ``os.replace`` it onto the target (atomic: readers see the old file or the new one);
3. ``fsync`` the directory, so the rename itself survives a power loss (best effort).

A writer killed between 1 and 2 leaves only its temporary file, never a partial target.
A read opens the file without blocking and reads it only if it is a regular file: a FIFO,
socket, device or directory in a value's place is a ``ResultStorageError`` naming it, never
a reader waiting forever.
Such leftovers are removed by :meth:`LocalResult.remove_stale_temporaries` (those older
than an hour, anywhere under ``dir``), which runs once per process and directory, on the
first write there.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from flowcore import configuration
from flowcore.engine.result.base import Result
from flowcore.exceptions import ResultStorageError, UnreadableValueError, ValueNotFoundError

__all__ = ["LocalResult"]

_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")
_swept: set[str] = set()
_REAL_ROOTS: dict[str, tuple[str, str]] = {}  # dir -> (normalised, real path), once per process
_swept_lock = threading.Lock()
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX: opening a FIFO must not wait for a writer
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


class LocalResult(Result):
    """Store values as files under ``dir``.

    Args:
        dir: the directory (default ``<config.home_dir>/results``). Relative locations
            are joined to it; every rendered location must stay inside it (or inside the
            literal directory of an absolute template).
        validate_dir: make ``dir`` absolute and create it now.
        **kwargs: ``Result`` arguments (``value``, ``location``, ``serializer``).

    A reader (or a later run checking a target) never sees a partial file, even if the
    writing process is killed; see the module docstring for the write protocol.
    """

    def __init__(
        self, dir: str | os.PathLike[str] | None = None, validate_dir: bool = True, **kwargs: Any
    ) -> None:
        if dir is None:
            dir = os.path.join(os.path.expanduser(str(configuration.config.home_dir)), "results")
        dir = os.fspath(dir)
        if validate_dir:
            dir = os.path.abspath(os.path.expanduser(dir))
            try:
                os.makedirs(dir, exist_ok=True)
            except OSError as exc:
                raise ResultStorageError(
                    f"LocalResult cannot create its directory {dir!r} ({exc}); "
                    "pass dir=... pointing to a writable directory"
                ) from exc
        self.dir = dir
        super().__init__(**kwargs)

    @property
    def default_location(self) -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S-%f")
        return f"flowcore-result-{stamp}-{uuid.uuid4().hex[:12]}"

    def remove_stale_temporaries(self, max_age: float = 3600.0) -> int:
        """Remove temporary files (``.<name>.<12 hex>.tmp``) older than ``max_age``
        seconds anywhere under ``dir``; return how many were removed."""
        cutoff = time.time() - max_age
        removed = 0
        for folder, _, names in os.walk(self.dir):
            for name in filter(_TEMPORARY.fullmatch, names):
                removed += _remove_if_older(os.path.join(folder, name), cutoff)
        return removed

    def _sweep_once(self) -> None:
        """Run :meth:`remove_stale_temporaries` on the first write to ``dir`` in this
        process (whichever thread gets there first)."""
        if self.dir in _swept:
            return
        with _swept_lock:
            if self.dir in _swept:
                return
            _swept.add(self.dir)
        self.remove_stale_temporaries()

    # -- primitives -----------------------------------------------------------------------

    def _root(self) -> str:
        return self.dir

    def _join(self, location: str, expand_home: bool) -> str:
        path = os.path.expanduser(location) if expand_home else location
        return os.path.normpath(os.path.join(self.dir, path))

    def _canonical_root(self) -> str | None:
        return self._roots()[1]

    def _roots(self) -> tuple[str, str]:
        """The root, normalised, and its real path (found once per process and dir)."""
        known = _REAL_ROOTS.get(self.dir)
        if known is None:
            root = os.path.normpath(self.dir)
            known = _REAL_ROOTS[self.dir] = (root, os.path.realpath(root))
        return known

    def _canonical(self, full: str) -> str | None:
        """``os.path.realpath(full)``, with a short cut for locations under the root: the
        root's real path is known (once per process), so only the components below it are
        checked for symlinks (one ``lstat`` each; none past the first that does not exist)."""
        root, real_root = self._roots()
        if full == root:
            return real_root
        if not full.startswith(root + os.sep):
            return os.path.realpath(full)
        below = full[len(root) + 1 :]
        path = real_root
        for part in below.split(os.sep):
            path = os.path.join(path, part)
            try:
                if stat.S_ISLNK(os.lstat(path).st_mode):
                    return os.path.realpath(full)
            except FileNotFoundError:
                break
            except OSError:
                return os.path.realpath(full)
        return os.path.join(real_root, below)

    def _exists(self, location: str) -> bool:
        return os.path.exists(location)

    def _read_bytes(self, location: str) -> bytes:
        try:
            return _read_file(location)
        except FileNotFoundError as exc:
            raise ValueNotFoundError(f"LocalResult: nothing is stored at {location!r}") from exc
        except _NotAValue as exc:
            raise UnreadableValueError(f"LocalResult cannot read {location!r}: {exc}") from exc
        except OSError as exc:
            raise ResultStorageError(f"LocalResult cannot read {location!r}: {exc}") from exc

    def _write_bytes(self, location: str, data: bytes) -> None:
        self._sweep_once()
        folder, name = os.path.split(location)
        temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            os.makedirs(folder, exist_ok=True)
            _write_synced(temporary, data)
            os.replace(temporary, location)
        except BaseException as exc:
            _remove_quietly(temporary)
            if isinstance(exc, OSError):
                raise ResultStorageError(f"LocalResult cannot write {location!r}: {exc}") from exc
            raise
        _sync_directory(folder)

    def _delete(self, location: str) -> bool:
        try:
            os.remove(location)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ResultStorageError(f"LocalResult cannot delete {location!r}: {exc}") from exc
        return True

    def _read_bytes_if_exists(self, location: str) -> bytes | None:
        try:
            return _read_file(location)
        except FileNotFoundError:
            return None
        except _NotAValue as exc:
            raise UnreadableValueError(f"LocalResult cannot read {location!r}: {exc}") from exc
        except OSError as exc:
            raise ResultStorageError(f"LocalResult cannot read {location!r}: {exc}") from exc

    def _stat(self, location: str) -> tuple[int, datetime] | None:
        try:
            found = os.stat(location)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ResultStorageError(f"LocalResult cannot stat {location!r}: {exc}") from exc
        return found.st_size, datetime.fromtimestamp(found.st_mtime, tz=timezone.utc)

    def _list(self, prefix: str) -> list[str]:
        if os.path.isfile(prefix):
            return [prefix]
        return [
            os.path.join(folder, name)
            for folder, _, names in os.walk(prefix)
            for name in names
            if not _TEMPORARY.fullmatch(name)
        ]


def _read_file(path: str) -> bytes:
    """The bytes of the regular file at ``path``.

    The file is opened without blocking and its type checked on the open descriptor (no
    race with a rename), so a FIFO, a device or a directory where a value belongs raises
    :class:`OSError` naming what is there, instead of blocking the reader forever (opening
    a FIFO waits for a writer) or reading a device. It is read straight from the
    descriptor: one ``read`` of its size and one more byte usually gets all of it (a file
    object around it cost a cold target hit about a tenth more).
    """
    descriptor = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_BINARY)
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise _NotAValue(
                f"it is a {_kind(found.st_mode)}, not a regular file, so it holds no value"
            )
        data = os.read(descriptor, found.st_size + 1)
        if len(data) == found.st_size:  # all of it (a read stops short of a whole file
            return data  # only at its end, or past about 2 GiB: then it goes on below)
        parts = [data]
        while chunk := os.read(descriptor, 1 << 24):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(descriptor)


class _NotAValue(OSError):
    """Something that is not a regular file is where a value belongs."""


def _kind(mode: int) -> str:
    """What a non-regular file of ``mode`` is, in words."""
    kinds = (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


def _write_synced(path: str, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` and wait until it is on disk."""
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _sync_directory(folder: str) -> None:
    """``fsync`` a directory so a rename in it is durable; best effort (some platforms
    and file systems cannot open or sync directories)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove_quietly(path: str) -> None:
    """Remove a temporary file after a failed write, keeping the write's own error."""
    try:
        os.remove(path)
    except OSError:
        pass


def _remove_if_older(path: str, cutoff: float) -> bool:
    """Remove ``path`` if it was last modified before ``cutoff``; False if it is newer or
    already gone (another process swept it)."""
    try:
        if os.lstat(path).st_mtime >= cutoff:
            return False
        os.remove(path)
    except FileNotFoundError:
        return False
    return True
