"""``LocalResult``: values stored as files under a directory, written atomically."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import Any

from flowcore import configuration
from flowcore.engine.result.base import Result
from flowcore.exceptions import ResultStorageError

__all__ = ["LocalResult"]


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

    def _root(self) -> str:
        return self.dir

    def _resolve(self, location: str) -> str:
        return os.path.normpath(os.path.join(self.dir, os.path.expanduser(location)))

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
