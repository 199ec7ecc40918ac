"""The one hashing helper: stable digests of inputs, parameters and key parts.

Every cache decision that compares values compares their digests, made here. A value is
first described (types whose token would not be stable become tagged tuples), then the
description is tokenized once::

    hash_value(value, *, hash_file_contents=False)   one hex digest, the same in every process
      describe(value)
        registered type (register_hasher)   -> ("flowcore-hasher", module, qualname, description)
        list / tuple / dict / set (and      -> walked, so the types below count inside them;
          subclasses)                          rebuilt only when something inside was replaced
        dataclass instance                  -> ("flowcore-dataclass", module, qualname,
                                                ((field, described value), ...))
        attrs instance                      -> ("flowcore-attrs", module, qualname, (...))
        enum member                         -> ("flowcore-enum", module, qualname, member name)
        pathlib.Path / os.PathLike          -> ("flowcore-path", resolved path, "file", size,
                                                st_mtime_ns)
          with hash_file_contents=True      -> ("flowcore-path", resolved path, "sha256", hex)
          missing                           -> ("flowcore-path", resolved path, "missing")
          directory                         -> ("flowcore-path", resolved path, "directory",
                                                sorted ((relative name, state), ...))
        anything else (numpy, pandas, ...)  -> itself
      dask.base.tokenize(description), in deterministic mode

Why the built-ins: dask tokenizes a dataclass, an attrs instance or an enum member by pickling
its class, and a class defined in ``__main__`` pickles by value with a fresh id in every
process, so its token never repeats (a silent cache miss on every run). A ``Path`` tokenizes by
its name alone, so a changed file kept its digest. Each built-in describes the value by what
makes it equal: dataclass fields with ``compare=False`` and attrs fields with ``eq=False`` do
not count, as they do not count for ``==``; a ``__dask_tokenize__`` method is honoured. A
registered hasher wins over the built-ins (nearest class in the MRO first).

Paths: a concrete path (``Path``, or any ``os.PathLike`` that is not a pure path) is a file
and counts by state; a pure path (``PurePosixPath``, ``PureWindowsPath``) names no file on
this machine and counts by name, as dask tokenizes it. A path that names nothing (absent, or
a symbolic link loop) counts as missing. A directory counts by a sorted listing of everything
under it (each file's relative name and state, each subdirectory's name; symbolic links to
directories are listed, not followed), so adding, removing or changing a file changes its
digest; the walk is repeated on every hash, and a directory the task writes into changes its
own digest (exclude that input from the key, or register a hasher). With
``hash_file_contents`` the state of a file is the sha256 of its bytes instead of its size and
modification time: rewriting the same bytes keeps the digest, and a same-size edit within one
timestamp tick cannot hide. A path that cannot be read raises :class:`UnhashableValue`.

numpy arrays and pandas objects are left to dask, whose own normalizers (registered lazily by
dask) hash their buffers: fast, and the same in every process. Nothing here imports numpy,
pandas or attrs: the built-ins recognise their types by attributes of the class.

Prefect 1 stored ``dask.base.tokenize(value)`` in ``Cached.hashed_inputs``; for values with
nothing to describe the description is the value itself, so the digest is exactly that token
and states made by either engine compare equal. (A structure that contains itself is the one
exception: its back-references are described as ``("flowcore-cycle", depth)``.) A value dask
can only tokenize non-deterministically (a ``threading.Lock``, an object that does not pickle)
raises :class:`UnhashableValue` instead of returning a random token that would never match:
the cache plan then runs the task uncached, with one WARNING.

>>> hash_value(1) == hash_value(1), hash_value([1, "a"]) == hash_value([1, "b"])
(True, False)
>>> from dataclasses import dataclass, field
>>> @dataclass
... class Point:
...     x: int
...     label: str = field(default="", compare=False)
>>> hash_value(Point(1, "a")) == hash_value(Point(1, "b")), hash_value(Point(1)) == hash_value(Point(2))
(True, False)
>>> import threading
>>> hash_value(threading.Lock())
Traceback (most recent call last):
...
flowcore.utilities.hashing.UnhashableValue: cannot hash a lock deterministically ...
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import hashlib
import operator
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePath
from typing import Any

__all__ = [
    "LOADED_FLOW_FILE",
    "HashedValue",
    "UnhashableValue",
    "file_contents_hashing",
    "hash_mapping",
    "hash_value",
    "module_name",
    "register_hasher",
]

_HASHERS: dict[type, Callable[[Any], Any]] = {}
_HASHERS_CHANGED = [0]  # how many times register_hasher ran: digests made before may differ

# Values that describe themselves: never walked, never replaced.
_LEAVES = frozenset({str, int, float, bool, bytes, type(None), complex})
_UNSET = ("flowcore-unset",)
_CHUNK = 1 << 20
# A path that names nothing: absent, under a file, or a symbolic link loop.
_NAMES_NOTHING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


class UnhashableValue(ValueError):
    """A value has no deterministic digest (register a hasher for its type)."""

    def __init__(self, value: Any, reason: str) -> None:
        self.name: str | None = None  # the input or parameter it was, when known
        self.kind = "input"  # what ``name`` names: "input", or a task's "attribute"
        self.type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        super().__init__(
            f"cannot hash a {type(value).__name__} deterministically ({reason}); register a "
            f"hasher for it with flowcore.caching.register_hasher({type(value).__name__}, fn)"
        )


def register_hasher(type_: type, hasher: Callable[[Any], Any]) -> None:
    """Hash instances of ``type_`` (and its subclasses) by ``hasher(value)``, a description
    that is itself hashable (str, bytes, numbers, tuples of them...).

    A registration wins over the built-in hashers (dataclasses, attrs, enums, paths).

    Args:
        type_: the class whose instances the hasher describes.
        hasher: ``fn(value) -> description``; equal descriptions mean equal digests.
    """
    if not isinstance(type_, type):
        raise TypeError(f"register_hasher needs a class, got {type_!r}")
    if not callable(hasher):
        raise TypeError(f"register_hasher needs a callable hasher, got {hasher!r}")
    _HASHERS[type_] = hasher
    _HASHERS_CHANGED[0] += 1


def hashers_generation() -> int:
    """A number that changes whenever :func:`register_hasher` runs: a digest kept while it
    stays the same is still the digest of the same objects (unless they read files: see
    :func:`hash_mapping_noting_files`)."""
    return _HASHERS_CHANGED[0]


_FILE_CONTENTS: ContextVar[bool] = ContextVar("flowcore_hash_file_contents", default=False)


@contextmanager
def file_contents_hashing(enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`hash_value` hashes paths by content unless told otherwise
    (a task's ``hash_file_contents=True`` reaches its validators and policies so)."""
    token = _FILE_CONTENTS.set(enabled)
    try:
        yield
    finally:
        _FILE_CONTENTS.reset(token)


def hash_value(value: Any, *, hash_file_contents: bool | None = None) -> str:
    """The stable digest of ``value`` (see the module docstring).

    Args:
        value: anything; containers are walked.
        hash_file_contents: paths count by the sha256 of their bytes, not size and mtime
            (None: as :func:`file_contents_hashing` set it, else False).

    Raises:
        UnhashableValue: the value has no deterministic digest.
    """
    return _hash(value, _Walk(_file_mode(hash_file_contents)))


def _file_mode(hash_file_contents: bool | None) -> bool:
    return _FILE_CONTENTS.get() if hash_file_contents is None else hash_file_contents


def _hash(value: Any, walk: _Walk) -> str:
    from dask.base import tokenize

    description = walk.describe(value)
    try:
        return tokenize(description, ensure_deterministic=True)
    except Exception as exc:
        raise UnhashableValue(value, str(exc).split("\n", 1)[0]) from exc


def hash_mapping(
    values: Mapping[str, Any], *, hash_file_contents: bool | None = None
) -> dict[str, str]:
    """``{name: hash_value(value)}``; raises :class:`UnhashableValue` naming the entry."""
    return hash_mapping_noting_files(values, hash_file_contents=hash_file_contents)[0]


def hash_mapping_noting_files(
    values: Mapping[str, Any], *, hash_file_contents: bool | None = None
) -> tuple[dict[str, str], bool]:
    """:func:`hash_mapping`, and whether a digest counted the state of a file (a concrete
    path): such a digest can change while the values stay the same objects, so it cannot
    be kept for them."""
    walk = _Walk(_file_mode(hash_file_contents))
    digests = {}
    for name, value in values.items():
        try:
            digests[name] = _hash(value, walk)
        except UnhashableValue as exc:
            exc.name = name
            raise
    return digests, walk.read_files


class _Walk:
    """One description: the file mode and the objects being described (to cut cycles)."""

    __slots__ = ("file_contents", "open", "read_files")

    def __init__(self, file_contents: bool) -> None:
        self.file_contents = file_contents
        self.open: dict[int, int] = {}
        self.read_files = False  # a path was described by the state of what it names

    def describe(self, value: Any) -> Any:
        """``value`` itself, or its tagged description when it (or anything in it) has one."""
        cls = type(value)
        if cls in _LEAVES:
            return value
        describer = self._describer(value, cls)
        if describer is None:
            return value
        depth = self.open.get(id(value))
        if depth is not None:
            return ("flowcore-cycle", depth)
        self.open[id(value)] = len(self.open)
        try:
            return describer(value)
        finally:
            del self.open[id(value)]

    def _describer(self, value: Any, cls: type) -> Callable[[Any], Any] | None:
        """The method that describes ``value``, or None when it describes itself."""
        hasher = _registered(cls) if _HASHERS else None
        if hasher is not None:
            return lambda v: ("flowcore-hasher", *_name(cls), self.describe(_call(hasher, v)))
        if isinstance(value, (list, tuple)):
            return self._sequence
        if isinstance(value, dict):
            return self._mapping
        if isinstance(value, (set, frozenset)):
            return self._set
        if hasattr(cls, "__dask_tokenize__"):
            return None
        if hasattr(cls, "__dataclass_fields__"):
            return self._dataclass
        if hasattr(cls, "__attrs_attrs__"):
            return self._attrs
        if isinstance(value, enum.Enum):
            return self._enum
        if isinstance(value, os.PathLike) and not _is_pure(value):
            return self._path
        return None

    def _items(self, values: list[Any]) -> list[Any] | None:
        """The described items, or None when every item describes itself."""
        if _LEAVES.issuperset(map(type, values)):
            return None
        described = [v if type(v) in _LEAVES else self.describe(v) for v in values]
        return None if all(map(operator.is_, described, values)) else described

    def _sequence(self, value: list[Any] | tuple[Any, ...]) -> Any:
        items = self._items(value if type(value) is list else list(value))
        if items is None:
            return value
        if type(value) is list:
            return items
        if type(value) is tuple:
            return tuple(items)
        return ("flowcore-sequence", *_name(type(value)), tuple(items))

    def _mapping(self, value: dict[Any, Any]) -> Any:
        keys, values = list(value), list(value.values())
        new_keys, new_values = self._items(keys), self._items(values)
        if new_keys is None and new_values is None:
            return value
        if type(value) is dict and new_keys is None:
            return dict(zip(keys, new_values or values))
        pairs = list(zip(new_keys or keys, new_values or values))
        if not isinstance(value, OrderedDict):
            pairs.sort(key=lambda kv: str(kv[0]))
        return ("flowcore-mapping", *_name(type(value)), tuple(pairs))

    def _set(self, value: set[Any] | frozenset[Any]) -> Any:
        items = self._items(list(value))
        if items is None:
            return value
        return ("flowcore-set", *_name(type(value)), tuple(sorted(items, key=str)))

    def _dataclass(self, value: Any) -> tuple[Any, ...]:
        fields = dataclasses.fields(value)
        compared = [(f.name, getattr(value, f.name, _UNSET)) for f in fields if f.compare]
        return ("flowcore-dataclass", *_name(type(value)), self._fields(compared))

    def _attrs(self, value: Any) -> tuple[Any, ...]:
        fields = type(value).__attrs_attrs__
        compared = [(a.name, getattr(value, a.name, _UNSET)) for a in fields if a.eq]
        return ("flowcore-attrs", *_name(type(value)), self._fields(compared))

    def _fields(self, compared: Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
        return tuple((name, self.describe(v)) for name, v in compared)

    def _enum(self, value: enum.Enum) -> tuple[Any, ...]:
        member = value.name if value.name is not None else self.describe(value.value)
        return ("flowcore-enum", *_name(type(value)), member)

    def _path(self, value: os.PathLike[Any]) -> tuple[Any, ...]:
        """A concrete path: its resolved name and the state of what it names."""
        self.read_files = True
        name = os.fsdecode(os.fspath(value))
        path = Path(os.path.realpath(name))  # Path.resolve raises on a link loop before 3.13
        try:
            return ("flowcore-path", str(path), *_state(path, self.file_contents))
        except OSError as exc:
            raise UnhashableValue(value, f"cannot read {name!r}: {exc}") from exc


def _registered(cls: type) -> Callable[[Any], Any] | None:
    for base in cls.__mro__:
        found = _HASHERS.get(base)
        if found is not None:
            return found
    return None


def _call(hasher: Callable[[Any], Any], value: Any) -> Any:
    description = hasher(value)
    if description is value:
        raise UnhashableValue(value, "its registered hasher returned the value itself")
    return description


def _name(cls: type) -> tuple[str, str]:
    return module_name(cls.__module__), cls.__qualname__


# flowcore.cli.loading imports a flow file as a module of this name (plus a digest of its path)
LOADED_FLOW_FILE = "flowcore_flow_"


def module_name(module: str | None) -> str:
    """The name a module goes by in digests. A flow file's code and types have one name
    however the file is run: ``python flow.py`` (``__main__``), ``flowcore run flow.py``
    and ``flowcore cache explain flow.py`` (a ``flowcore_flow_<digest>`` module) all give
    ``<script>``, so they make the same keys; so does ``__mp_main__``, the name a process
    started by ``multiprocessing`` (a Dask worker of a local cluster) gives the script."""
    if not module:
        return "?"
    if module in ("__main__", "__mp_main__") or module.startswith(LOADED_FLOW_FILE):
        return "<script>"
    return module


def _is_pure(value: Any) -> bool:
    """A pure path (``PurePosixPath``, ``PureWindowsPath``) names no file on this machine."""
    return isinstance(value, PurePath) and not isinstance(value, Path)


def _state(path: Path, file_contents: bool) -> tuple[Any, ...]:
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno in _NAMES_NOTHING:
            return ("missing",)
        raise
    if stat.S_ISREG(st.st_mode):
        return ("sha256", _sha256(path)) if file_contents else ("file", st.st_size, st.st_mtime_ns)
    if stat.S_ISDIR(st.st_mode):
        return ("directory", _listing(path, file_contents))
    return ("special", stat.S_IFMT(st.st_mode))  # a FIFO or device: never read


def _listing(root: Path, file_contents: bool) -> tuple[tuple[Any, ...], ...]:
    """Everything under ``root``, sorted: (relative name, state) per entry."""

    def fail(exc: OSError) -> None:
        raise exc

    entries: list[tuple[Any, ...]] = []
    for top, dirs, files in os.walk(root, onerror=fail):
        here = Path(top).relative_to(root)
        entries.extend(((here / name).as_posix(), "directory") for name in dirs)
        entries.extend(
            ((here / name).as_posix(), *_state(Path(top, name), file_contents)) for name in files
        )
    return tuple(sorted(entries, key=operator.itemgetter(0)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashedValue:
    """A value known only by its digest (a parameter read back from a cache record).

    It compares equal to any value with that digest, so Prefect 1's parameter validators
    (``cached_parameters == parameters``) work on records from a persistent store.
    """

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HashedValue):
            return self.digest == other.digest
        try:
            return hash_value(other) == self.digest
        except UnhashableValue:
            return False

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"<value with digest {self.digest[:12]}>"
