"""``LocalResult``: values stored as files under a directory, written atomically.

Layout: a location is a path relative to ``dir`` (or, for a literal absolute template, an
absolute path under that template's literal directory); the full locations returned by
``write``, ``write_at`` and ``write_bytes_at`` are absolute paths that ``read``,
``exists`` and ``delete`` accept back. Every location is checked after ``realpath`` of both
the directory and the candidate, so a symlink inside ``dir`` cannot lead a read or a write
out of it.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from flowcore import configuration
from flowcore.engine.result.base import Result
from flowcore.exceptions import ResultStorageError

__all__ = ["LocalResult"]

_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")


class LocalResult(Result):
    """Store values as files under ``dir``.

    Args:
        dir: the directory (default ``<config.home_dir>/results``). Relative locations
            are joined to it; every rendered location must stay inside it (or inside the
            literal directory of an absolute template).
        validate_dir: make ``dir`` absolute and create it now.
        **kwargs: ``Result`` arguments (``value``, ``location``, ``serializer``).

    A write goes to a temporary file beside the target and is renamed into place, so a
    reader (or a later run checking a target) never sees a partial file, even if the
    writing process is killed.
    """

    def __init__(self, dir: str | os.PathLike[str] | None = None, validate_dir: bool = True, **kwargs: Any) -> None:
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

    # -- primitives -----------------------------------------------------------------------

    def _root(self) -> str:
        return self.dir

    def _join(self, location: str, expand_home: bool) -> str:
        path = os.path.expanduser(location) if expand_home else location
        return os.path.normpath(os.path.join(self.dir, path))

    def _canonical(self, full: str) -> str | None:
        return os.path.realpath(full)

    def _exists(self, location: str) -> bool:
        return os.path.exists(location)

    def _read_bytes(self, location: str) -> bytes:
        try:
            with open(location, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise ResultStorageError(f"LocalResult cannot read {location!r}: {exc}") from exc

    def _write_bytes(self, location: str, data: bytes) -> None:
        folder, name = os.path.split(location)
        temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(temporary, "wb") as fh:
                fh.write(data)
            os.replace(temporary, location)
        except OSError as exc:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise ResultStorageError(f"LocalResult cannot write {location!r}: {exc}") from exc

    def _delete(self, location: str) -> bool:
        try:
            os.remove(location)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ResultStorageError(f"LocalResult cannot delete {location!r}: {exc}") from exc
        return True

    def _list(self, prefix: str) -> list[str]:
        if os.path.isfile(prefix):
            return [prefix]
        return [
            os.path.join(folder, name)
            for folder, _, names in os.walk(prefix)
            for name in names
            if not _TEMPORARY.fullmatch(name)
        ]

