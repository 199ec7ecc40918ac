"""The ``Result`` base class: a value carrier and a storage interface.

A ``Result`` holds ``value`` and ``location``. Storage backends (``engine.results``)
implement three primitives, ``_write_bytes``, ``_read_bytes`` and ``_exists``, over a
*rendered* location; this base class implements ``format``, ``write``, ``read`` and
``exists`` once on top of them. The base class itself has no storage: those three raise
:class:`~flowcore.exceptions.ResultNotImplementedError`, as in Prefect 1.

``NoResult`` is the singleton meaning "nothing computed yet"; it differs from a
``Result`` whose value is None only by identity.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from flowcore.engine.serializers import PickleSerializer, Serializer
from flowcore.exceptions import ResultNotImplementedError, TemplateKeyError

__all__ = ["NoResult", "NoResultType", "Result"]

_DEFAULT_SERIALIZER = PickleSerializer()


class Result:
    """A value and where it is stored.

    Args:
        value: the value carried.
        location: a ``str.format`` template, or a callable ``(**kwargs) -> str``, naming
            where the value is stored.
        serializer: how the value becomes bytes (default ``PickleSerializer``).
    """

    def __init__(
        self,
        value: Any = None,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        self.value = value
        self.serializer = serializer if serializer is not None else _DEFAULT_SERIALIZER
        if callable(location):
            self._formatter: Callable[..., str] | None = location
            self.location: str | None = None
        else:
            self._formatter = None
            self.location = location

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.value!r}>"

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        mine = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        theirs = {k: v for k, v in other.__dict__.items() if not k.startswith("_")}
        return mine == theirs

    __hash__ = object.__hash__

    def copy(self) -> Result:
        """A shallow copy."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def from_value(self, value: Any) -> Result:
        """A copy carrying ``value`` and no location."""
        new = self.copy()
        new.value = value
        new.location = None
        return new

    @property
    def default_location(self) -> str:
        """Where a value goes when no location template is set."""
        now = datetime.now(timezone.utc)
        return f"{now.year}/{now.month}/{now.day}/{uuid.uuid4()}.prefect_result"

    def render_location(self, **kwargs: Any) -> str:
        """The concrete location for this write, from the template or formatter, checked
        to stay inside this Result's root (see :meth:`_place`)."""
        if self.location is not None:
            return self._place(_format_template(self.location, kwargs, type(self).__name__), self.location)
        if self._formatter is not None:
            rendered = self._formatter(**kwargs)
            return self._place(rendered, rendered)
        return self._place(self.default_location, None)

    def format(self, **kwargs: Any) -> Result:
        """A copy whose location is rendered from ``kwargs``."""
        new = self.copy()
        new.location = self.render_location(**kwargs)
        new._formatter = None
        return new

    def exists(self, location: str, **kwargs: Any) -> bool:
        """Whether something is stored at ``location`` (formatted with ``kwargs``)."""
        rendered = _format_template(location, kwargs, type(self).__name__)
        return self._exists(self._place(rendered, location))

    def read(self, location: str) -> Result:
        """A new Result with the value stored at ``location``."""
        value = self.serializer.deserialize(self._read_bytes(self._resolve(location)))
        new = self.copy()
        new.location = location
        new.value = value
        return new

    def write(self, value_: Any, **kwargs: Any) -> Result:
        """Store ``value_`` at the rendered location; return a Result that carries both.

        The location is rendered and checked before anything is serialized or written.
        """
        new = self.format(**kwargs)
        new.value = value_
        assert new.location is not None
        self._write_bytes(new.location, self.serializer.serialize(value_))
        return new

    def write_at(self, location: str, value_: Any) -> Result:
        """Store ``value_`` at ``location`` exactly as given (an already rendered location:
        braces in it are not template fields), through :meth:`write`."""
        holder = self.copy()
        holder._formatter = None
        holder.location = location.replace("{", "{{").replace("}", "}}")
        return holder.write(value_)

    # -- what a storage backend implements ------------------------------------------------

    def _root(self) -> str:
        """The directory or key prefix every location must stay inside ("" = no prefix)."""
        return ""

    def _resolve(self, location: str) -> str:
        """The backend's full location for ``location`` (e.g. joined with a directory)."""
        return location

    def _place(self, rendered: str, template: str | None) -> str:
        """Resolve ``rendered`` and check it stays inside the root and the template's
        literal directory, so values from parameters or inputs (``..``, absolute paths)
        cannot move a write elsewhere. Raises ValueError before anything is written."""
        literal = (template or "").split("{", 1)[0]
        literal_dir = literal[: literal.rfind("/") + 1]
        full = self._resolve(rendered)
        allowed = _normalised(self._resolve(literal_dir) if literal_dir else self._root())
        checked = _normalised(full)
        if allowed:
            inside = checked == allowed or checked.startswith(allowed.rstrip("/") + "/")
        else:
            inside = not (checked == ".." or checked.startswith("../") or checked.startswith("/"))
        if not inside:
            raise ValueError(
                f"{type(self).__name__}: location {rendered!r} (template {template!r}) escapes "
                f"{allowed or 'the storage root'!r}; values interpolated from parameters or "
                "inputs may not contain '..' or absolute paths"
            )
        return full

    def _exists(self, location: str) -> bool:
        raise ResultNotImplementedError(_no_storage(self, "check whether a value exists"))

    def _read_bytes(self, location: str) -> bytes:
        raise ResultNotImplementedError(_no_storage(self, "read a value"))

    def _write_bytes(self, location: str, data: bytes) -> None:
        raise ResultNotImplementedError(_no_storage(self, "write a value"))


class NoResultType(Result):
    """The type of :data:`NoResult`: a shared, read-only singleton.

    Copies (``copy``, ``copy.copy``, ``copy.deepcopy``, pickling) give back the singleton,
    so ``state._result is NoResult`` survives them; ``from_value``, ``format`` and
    ``write`` return new ``Result`` objects and never change it.
    """

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen"):
            raise AttributeError(
                f"NoResult is a shared singleton; cannot set {name!r} (use NoResult.from_value)"
            )
        object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    __hash__ = object.__hash__

    def __copy__(self) -> NoResultType:
        return self

    def copy(self) -> NoResultType:
        return self

    def from_value(self, value: Any) -> Result:
        return Result(value=value)

    def format(self, **kwargs: Any) -> Result:
        return Result().format(**kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> NoResultType:
        return self

    def __reduce__(self) -> str:
        return "NoResult"


NoResult = NoResultType()


def _no_storage(result: Result, operation: str) -> str:
    return (
        f"{type(result).__name__} has no storage, so it cannot {operation}; "
        "give the task or flow a storage Result such as "
        "flowcore.engine.results.LocalResult(dir=...)"
    )


def _normalised(path: str) -> str:
    return posixpath.normpath(path) if path else ""


def _format_template(template: str, kwargs: dict[str, Any], owner: str) -> str:
    try:
        return template.format(**kwargs)
    except KeyError as exc:
        known = ", ".join(sorted(k for k in kwargs if isinstance(k, str) and not k.startswith("_")))
        raise TemplateKeyError(
            f"{owner} location template {template!r} uses unknown key {exc.args[0]!r}; "
            f"known keys: {known}"
        ) from None
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{owner} location template {template!r} cannot be formatted: {exc}") from None
