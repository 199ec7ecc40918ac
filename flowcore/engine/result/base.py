"""The ``Result`` base class: a value carrier and the one storage interface.

A ``Result`` holds ``value`` and ``location``. Storage backends (``engine.results``)
implement five primitives over a *full* location (a path or an object key):
``_write_bytes``, ``_read_bytes``, ``_exists``, ``_delete`` and ``_list``. This base class
does everything else once, for every backend:

* **Placing.** Every location is rendered (from a ``str.format`` template, a callable, or
  given as is to ``read``, ``exists``, ``write_at``, ``write_bytes_at``, ``read_bytes_at``,
  ``delete`` or ``list``) and then *placed*: joined to the backend's root and checked to
  stay inside it, before any byte is read or written. The allowed directory is the root,
  narrowed to the literal directory of a template (``"safe/{name}.pkl"`` keeps values in
  ``safe/``). The one widening: a literal absolute template chosen by the programmer
  (``"/data/out/{x}.pkl"``, or ``"~/out/{x}.pkl"`` on disk) adds its literal directory to
  what this Result may use. Values interpolated from parameters or inputs, and whatever a
  callable returns, never leave the allowed directory: ``..``, absolute paths, a leading
  ``~`` (never expanded) and, on disk, symlinks out of the root (both sides are compared
  after ``realpath``) raise :class:`~flowcore.exceptions.LocationEscapeError`. So does a
  location that names no value: one that renders to the allowed directory itself (``""``,
  ``"."``; only ``list`` takes a directory) or holds a NUL character.
* **Encoding.** ``encode`` serializes a value and, when ``results.signing_key`` is set,
  puts a MAC header in front (:mod:`.signing`); ``decode`` verifies the MAC *before*
  deserializing, raising :class:`~flowcore.exceptions.SignatureError` for a missing or
  wrong one. ``write`` and ``read`` go through them; the bytes-level methods store and
  return exactly the bytes given, for cache stores that keep their own formats.
* **Atomicity.** A reader never sees a partial value: backends write atomically (on disk
  a synced temporary file renamed into place; on S3 and GCS a single upload).

The base class itself has no storage: the primitives raise
:class:`~flowcore.exceptions.ResultNotImplementedError`, as in Prefect 1.

``NoResult`` is the singleton meaning "nothing computed yet"; it differs from a
``Result`` whose value is None only by identity.
"""

from __future__ import annotations

import builtins
import posixpath
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from flowcore.engine.result import signing
from flowcore.engine.serializers import PickleSerializer, Serializer
from flowcore.exceptions import (
    LocationEscapeError,
    ResultNotImplementedError,
    SignatureError,
    TemplateKeyError,
    UnreadableValueError,
)

__all__ = ["NoResult", "NoResultType", "Result", "checkpointed_none", "is_checkpointed_none"]

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
        """The full location for this write, from the template or formatter, placed inside
        this Result's root (raises LocationEscapeError otherwise)."""
        if self.location is not None:
            rendered = _format_template(self.location, kwargs, type(self).__name__)
            return self._place(rendered, _literal(self.location), f"template {self.location!r}")
        if self._formatter is not None:
            location = self._formatter(**kwargs)
            if not isinstance(location, str):
                raise TypeError(
                    f"{type(self).__name__}: the callable location {self._formatter!r} returned "
                    f"{location!r} (of type {type(location).__name__}); it must return a str, the "
                    "location of the value"
                )
            return self._place(location, "", "a callable location")
        return self._place(self.default_location, "", None)

    def format(self, **kwargs: Any) -> Result:
        """A copy whose location is rendered from ``kwargs``."""
        new = self.copy()
        new.location = self.render_location(**kwargs)
        new._formatter = None
        return new

    # -- values ---------------------------------------------------------------------------

    def exists(self, location: str, **kwargs: Any) -> bool:
        """Whether something is stored at ``location`` (a template formatted with
        ``kwargs``; with no kwargs, a plain location without braces)."""
        if type(self)._exists is Result._exists:  # no storage: say so whatever the location
            raise ResultNotImplementedError(_no_storage(self, "check whether a value exists"))
        rendered = _format_template(location, kwargs, type(self).__name__)
        return self._exists(self._place(rendered, _literal(location), f"template {location!r}"))

    def read_if_exists(self, location: str, **kwargs: Any) -> Result | None:
        """:meth:`read` the value at ``location`` (a template formatted with ``kwargs``) if
        one is stored there, else None, placing the location once (a subclass with its own
        ``exists`` or ``read`` gets those called).

        Raises:
            UnreadableValueError: something is there but it is not a value that can be
                read back (truncated, foreign, unsigned under a key, not a regular file).
            ResultStorageError: the storage could not be asked (unreachable, refused,
                no such bucket): nothing is known of the value, so it is not a miss.
            Errors of the location itself (an escape, an unknown key, no storage) are
            raised as such.
        """
        cls = type(self)
        rendered = _format_template(location, kwargs, cls.__name__)
        if cls.exists is not Result.exists or cls.read is not Result.read:
            if not self.exists(location, **kwargs):
                return None
            try:
                return self.read(rendered)
            except Exception as exc:
                raise UnreadableValueError(
                    f"{cls.__name__}: the value at {rendered!r} cannot be read: {exc!r}"
                ) from exc
        full = self._place(rendered, _literal(location), f"template {location!r}")
        try:
            data = self._read_bytes_if_exists(full)  # (a storage failure is raised as is)
        except UnreadableValueError as exc:  # (something there that is not a value)
            raise UnreadableValueError(
                f"{cls.__name__}: the value at {rendered!r} cannot be read: {exc!r}"
            ) from exc
        if data is None:
            return None
        try:
            value = self.decode(data, full)
        except Exception as exc:
            raise UnreadableValueError(
                f"{cls.__name__}: the value at {rendered!r} cannot be read: {exc!r}"
            ) from exc
        new = self.copy()
        new.value, new.location = value, rendered
        return new

    def read(self, location: str) -> Result:
        """A new Result with the value stored at ``location`` (verified and deserialized
        by :meth:`decode`)."""
        if type(self)._read_bytes is Result._read_bytes:
            raise ResultNotImplementedError(_no_storage(self, "read a value"))
        full = self._place_given(location)
        value = self.decode(self._read_bytes(full), full)
        new = self.copy()
        new.location = location
        new.value = value
        return new

    def stores_values(self) -> bool:
        """Whether :meth:`write` puts the value in storage (a backend's ``_write_bytes``, or
        a ``write`` of its own, Prefect 1 style), so that a transaction can hold the write
        back until it commits. The base Result stores nothing (its ``write`` raises
        ResultNotImplementedError: the value is not checkpointed)."""
        kind = type(self)
        return kind.write is not Result.write or kind._write_bytes is not Result._write_bytes

    def write(self, value_: Any, **kwargs: Any) -> Result:
        """Store ``value_`` at the rendered location; return a Result that carries both.

        The location is rendered and placed before anything is serialized or written.
        """
        new = self.format(**kwargs)
        new.value = value_
        assert new.location is not None
        self._write_bytes(new.location, self.encode(value_))
        return new

    def write_at(self, location: str, value_: Any) -> Result:
        """Store ``value_`` at ``location`` exactly as given (an already rendered location:
        braces in it are not template fields), through :meth:`write`."""
        full = self._place_given(location)
        holder = self.copy()
        holder._formatter = None
        holder.location = full.replace("{", "{{").replace("}", "}}")
        return holder.write(value_)

    def encode(self, value: Any) -> bytes:
        """``value`` as stored bytes: serialized, behind a MAC header when
        ``results.signing_key`` is set."""
        payload = self.serializer.serialize(value)
        tag = signing.mac(payload)
        return payload if tag is None else signing.add_header(payload, tag)

    def decode(self, data: bytes, location: str) -> Any:
        """The value in stored bytes read from ``location``.

        With ``results.signing_key`` set, bytes without a header or with a wrong MAC raise
        SignatureError before anything is deserialized. Without a key, a header is
        stripped unverified.
        """
        tag, payload = signing.split_header(data)
        key = signing.signing_key()
        if key is not None and (tag is None or not signing.verify(payload, tag, key)):
            problem = "has no signature" if tag is None else "has a signature that does not match"
            raise SignatureError(
                f"{type(self).__name__}: the value at {location!r} {problem} under "
                "results.signing_key, so it was not unpickled; it was written without the "
                "key, under another key, or changed since"
            )
        return self.serializer.deserialize(payload)

    # -- bytes, for cache stores ----------------------------------------------------------

    def write_bytes_at(self, location: str, data: bytes) -> str:
        """Store ``data`` as is at ``location`` (atomically); return the location to
        pass back to ``read_bytes_at``, ``read``, ``exists`` and ``delete``."""
        full = self._place_given(location)
        self._write_bytes(full, data)
        return full

    def read_bytes_at(self, location: str) -> bytes:
        """The bytes stored at ``location``, exactly as written."""
        return self._read_bytes(self._place_given(location))

    def delete(self, location: str) -> bool:
        """Remove what is stored at ``location``; False if nothing was there."""
        return self._delete(self._place_given(location))

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Every stored location at or under ``prefix`` (a directory-like location; ""
        is the whole root), recursively and sorted, as ``read`` and ``delete`` accept
        them. Temporary files of unfinished writes are not listed."""
        full = self._place_given(prefix, directory=True)
        under = full.rstrip("/") + "/"
        found = self._list(full)
        return sorted(f for f in found if not full or f == full or f.startswith(under))

    def stat(self, location: str) -> tuple[int, datetime] | None:
        """The size in bytes and the last-modified time (UTC) of what is stored at
        ``location``; None if nothing is there."""
        return self._stat(self._place_given(location))

    def remove_stale_temporaries(self, max_age: float = 3600.0) -> int:
        """Remove leftovers of writes killed midway that are older than ``max_age``
        seconds; return how many were removed (none for backends without temporaries)."""
        return 0

    # -- placing --------------------------------------------------------------------------

    def _place_given(self, location: str, directory: bool = False) -> str:
        """Place a location given as is (no template fields)."""
        return self._place(location, location, None, directory)

    def _place(
        self, rendered: str, literal: str, source: str | None, directory: bool = False
    ) -> str:
        """The full location of ``rendered``, checked to stay inside the directory its
        template's ``literal`` part names, itself inside an allowed directory (the root,
        or this Result's own absolute template directory), and to name something inside
        that directory rather than the directory itself (unless ``directory``: a prefix
        to list). Raises LocationEscapeError (naming ``source``, where the location came
        from) before anything is read or written."""
        if "://" in rendered:
            raise self._invalid(
                rendered,
                source,
                f"is a URL; a location is a path inside {self._describe_root()}: give the "
                "part after it (the bucket or directory is the Result's own, e.g. "
                "S3Result(bucket=...))",
            )
        if literal.startswith("/") and type(self)._join is Result._join:
            raise self._invalid(
                rendered,
                source,
                f"starts with '/'; keys are relative to {self._describe_root()}: drop the "
                "leading '/' (Prefect 1 wrote such a key as given, with its '/')",
            )
        if "\x00" in rendered:
            raise self._invalid(
                rendered,
                source,
                "contains a NUL character ('\\x00'), which no file or object name may hold; "
                "remove it from the values the location is made of",
            )
        try:
            full, is_bound = self._bounded(rendered, literal, source)
        except UnicodeError as exc:  # a path the file system cannot encode
            raise self._invalid(rendered, source, f"cannot be a file name ({exc})") from None
        if is_bound and not directory:
            root = self._describe_root()
            where = (
                f"the root {root!r}" if full == self._join("", False) else f"the directory {full!r}"
            )
            raise self._invalid(
                rendered,
                source,
                f"renders to {where} itself; a location must name a file inside it",
            )
        return full

    def _bounded(self, rendered: str, literal: str, source: str | None) -> tuple[str, bool]:
        """The full location of ``rendered``, and whether it is the very directory it must
        stay inside (see :meth:`_place`); raises LocationEscapeError when it leaves it."""
        home = literal.startswith("~")
        full = self._join(rendered, home)
        literal_dir = _directory(literal)
        if literal_dir or home:
            bound_location = self._join(literal_dir, home)
            bound = self._canonical(bound_location)
            if bound is None or not self._allowed(bound):
                raise self._escape(rendered, source, self._describe_root())
        else:  # no directory in the template: bounded by the root itself
            bound_location, bound = "", self._canonical_root()
        target = self._canonical(full)
        if (
            (rendered.startswith("~") and not home)
            or bound is None
            or target is None
            or not _inside(bound, target)
        ):
            raise self._escape(rendered, source, bound_location or self._describe_root())
        return full, target == bound

    def _invalid(self, rendered: str, source: str | None, problem: str) -> LocationEscapeError:
        """The error for ``rendered`` (from ``source``), which names no valid location."""
        return LocationEscapeError(
            f"{type(self).__name__}: location {rendered!r}"
            + (f" (from {source})" if source is not None else "")
            + f" {problem}. Nothing was read or written"
        )

    def _escape(self, rendered: str, source: str | None, allowed: str) -> LocationEscapeError:
        """The error for ``rendered`` (from ``source``) leaving the ``allowed`` directory."""
        root = self._describe_root()
        where = f"the root {root!r}" if allowed == root else f"{allowed!r} (the root is {root!r})"
        return LocationEscapeError(
            f"{type(self).__name__}: location {rendered!r}"
            + (f" (from {source})" if source is not None else "")
            + f" escapes {where}"
            + "; values interpolated from parameters or inputs may not contain '..', absolute "
            "paths or '~', or lead through symlinks out of the root. Nothing was read or written"
        )

    def _allowed(self, bound: str) -> bool:
        """Whether the canonical directory ``bound`` is inside the root, or inside the
        literal directory of this Result's own absolute template."""
        root = self._canonical(self._join("", False))
        if root is not None and _inside(root, bound):
            return True
        own = _literal(self.location) if isinstance(self.location, str) else ""
        if not own.startswith(("/", "~")):
            return False
        own_dir = self._canonical(self._join(_directory(own), own.startswith("~")))
        return own_dir is not None and _inside(own_dir, bound)

    # -- what a storage backend implements ------------------------------------------------

    def _root(self) -> str:
        """The key prefix every location must stay inside ("" = the whole store)."""
        return ""

    def _describe_root(self) -> str:
        """The root as a user would name it, for messages."""
        return self._root() or "the storage root"

    def _join(self, location: str, expand_home: bool) -> str:
        """The full location of ``location``: here an object key, normalised and joined
        to the root prefix ("" is the root itself). ``expand_home`` applies to paths."""
        key = posixpath.normpath(posixpath.join(self._root(), location))
        return "" if key == "." else key

    def _canonical_root(self) -> str | None:
        """``_canonical`` of the root (a backend may know it without asking again)."""
        return self._canonical(self._join("", False))

    def _canonical(self, full: str) -> str | None:
        """``full`` in the form containment is checked on; None if it is no valid
        location at all (a key that is absolute or climbs above the store)."""
        if full.startswith("/") or full == ".." or full.startswith("../"):
            return None
        return full

    def _exists(self, location: str) -> bool:
        raise ResultNotImplementedError(_no_storage(self, "check whether a value exists"))

    def _read_bytes(self, location: str) -> bytes:
        raise ResultNotImplementedError(_no_storage(self, "read a value"))

    def _write_bytes(self, location: str, data: bytes) -> None:
        raise ResultNotImplementedError(_no_storage(self, "write a value"))

    def _delete(self, location: str) -> bool:
        raise ResultNotImplementedError(_no_storage(self, "delete a value"))

    def _list(self, prefix: str) -> builtins.list[str]:
        raise ResultNotImplementedError(_no_storage(self, "list values"))

    def _stat(self, location: str) -> tuple[int, datetime] | None:
        raise ResultNotImplementedError(_no_storage(self, "describe a stored value"))

    def _read_bytes_if_exists(self, location: str) -> bytes | None:
        """The bytes at ``location``, None if nothing is there; backends that can tell a
        missing value from one read do it in one request."""
        return self._read_bytes(location) if self._exists(location) else None


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


def checkpointed_none(result: Result) -> Result:
    """A copy of ``result`` carrying the value None, marked as checkpointed. Prefect 1
    writes no None (a Success whose Result has no location is the value None), so without
    the mark a run store could not tell a task whose value was None from one whose value
    was never written, and a resume could not restore the first."""
    new = result.from_value(None)
    new.__dict__["_checkpointed_none"] = True  # (private: not compared, travels pickled)
    return new


def is_checkpointed_none(result: Result) -> bool:
    """Whether ``result`` is one :func:`checkpointed_none` made (and still carries None)."""
    return result.value is None and result.__dict__.get("_checkpointed_none") is True


def _no_storage(result: Result, operation: str) -> str:
    return (
        f"{type(result).__name__} has no storage, so it cannot {operation}; "
        "give the task or flow a storage Result such as "
        "flowcore.engine.results.LocalResult(dir=...)"
    )


def _literal(template: str) -> str:
    """The part of a template before its first field: chosen by the programmer."""
    return template.split("{", 1)[0]


def _directory(literal: str) -> str:
    """The directory part of a literal, up to and including its last "/"."""
    return literal[: literal.rfind("/") + 1]


def _inside(outer: str, inner: str) -> bool:
    """Whether canonical ``inner`` is ``outer`` or below it ("" contains everything)."""
    if not outer:
        return True
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _format_template(template: str, kwargs: dict[str, Any], owner: str) -> str:
    if "{" not in template and "}" not in template:
        return template  # what format gives, without passing the keys
    try:
        return template.format(**kwargs)
    except KeyError as exc:
        known = ", ".join(sorted(k for k in kwargs if isinstance(k, str) and not k.startswith("_")))
        raise TemplateKeyError(
            f"{owner} location template {template!r} uses unknown key {exc.args[0]!r}; "
            f"known keys: {known}"
        ) from None
    except (IndexError, ValueError) as exc:
        raise ValueError(
            f"{owner} location template {template!r} cannot be formatted: {exc}"
        ) from None
