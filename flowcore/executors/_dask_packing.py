"""How ``DaskExecutor`` packs a batch of calls for the workers.

A call submitted by the FlowRunner is ``run_task(task, state, upstream_states, ...)`` (or
``run_child`` or ``run_batch``, with the same kinds of arguments): its
arguments hold futures (upstream states, which the scheduler must resolve) and objects
that every call of a pass repeats (the task, the upstream tasks on each Edge, the flow's
configuration, an unmapped input). Handing those arguments to ``client.submit`` as they are
pickles the repeated objects again for every call, on the client and again on the
scheduler; a mapped list constant travels with each of its n children (n² bytes).

So the executor pickles each call itself, once, when a batch is sent (``pack``)::

    (fn, args, kwargs) ──BatchPacker.pack──> payload bytes
                                             + the futures met inside (-> dependencies)
                                             + the tokens of shared objects used

    an object with a __dict__ (a Task, a State, a Result, the Config, ...), or a dict passed
    as an argument whose keys are plain values (the flow's context), met again in a later
    call of the same batch, whose pickle is >= 512 bytes and holds no future, is pickled
    once into a "shared" blob that becomes one Dask key; the calls refer to it by token.

A blob is pickled on its own, so what it holds is a copy apart from the rest of the call
on the worker. A dict keyed by objects (the upstream states of a task run, keyed by Edge)
is a lookup table for other arguments keyed by the same Edges, whose equality is the
identity of their tasks: it is never shared whole, so its keys are the call's own objects
(its values are shared one by one, as anywhere in the call).

On a worker, :func:`unpack` rebuilds the call: futures are replaced by the values Dask
resolved, tokens by the objects of the shared blobs, which each worker process unpickles
once and keeps in a small LRU cache, so the calls of one batch on one worker share one
task object, as they would in a single process. Sharing is scoped to a batch: an object
mutated between two batches is sent again, never a stale copy.
"""

from __future__ import annotations

import io
import pickle
import threading
import types
import uuid
from collections import OrderedDict
from typing import Any

import cloudpickle

__all__ = ["BatchPacker", "unpack"]

SHARE_MIN_BYTES = 512
_PLAIN = frozenset(
    {
        int,
        float,
        complex,
        bool,
        str,
        bytes,
        bytearray,
        type(None),
        tuple,
        list,
        dict,
        set,
        frozenset,
    }
)
_NEVER_SHARED = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
)
_CACHE_SIZE = 256


class _HoldsFuture(Exception):
    pass


class BatchPacker:
    """Pickles the calls of one batch, sharing repeated objects (see the module docstring).

    Args:
        future_type: the class whose instances are dependencies (``distributed.Future``).
    """

    def __init__(self, future_type: type) -> None:
        self.future_type = future_type
        self.blobs: dict[str, bytes] = {}
        self._seen: dict[int, list[Any]] = {}
        self._calls = 0
        self._top_dicts: set[int] = set()

    def pack(self, fn: Any, args: Any, kwargs: Any) -> tuple[bytes, list[Any], list[str]]:
        """``(payload, dependency futures, shared tokens)`` of one call: pickled with the
        standard (C) pickler when it can, else with cloudpickle (lambdas, closures, code
        defined in ``__main__``). The standard pickler names a class or function of the
        flow's script as ``__main__.<name>``, which a worker started elsewhere cannot
        import (a task class defined in the script failed there): a payload that names
        ``__main__`` is made again with cloudpickle, which sends such code by value."""
        self._calls += 1
        self._top_dicts = {id(arg) for arg in args if type(arg) is dict and _plain_keys(arg)}
        for pickler_class in (_CallPickler, _CloudCallPickler):
            buffer = io.BytesIO()
            pickler = pickler_class(buffer, self)
            try:
                pickler.dump((fn, args, kwargs))
            except (pickle.PicklingError, TypeError, AttributeError):
                if pickler_class is _CloudCallPickler:
                    raise
                continue
            payload = buffer.getvalue()
            if pickler_class is _CallPickler and b"__main__" in payload:
                continue
            break
        return payload, pickler.deps, pickler.tokens

    def token(self, obj: Any) -> str | None:
        """The shared token of ``obj``, or None to pickle it inline: first met in this call
        (pickle's memo keeps one copy per call), small, or holding a future."""
        entry = self._seen.get(id(obj))
        if entry is None:
            self._seen[id(obj)] = [obj, None, self._calls]
            return None
        if entry[2] == self._calls:
            return None
        if entry[1] is None:
            entry[1] = self._share(obj)
        return entry[1] or None

    def _share(self, obj: Any) -> str | bool:
        buffer = io.BytesIO()
        try:
            _BlobPickler(buffer, self.future_type).dump(obj)
        except _HoldsFuture:
            return False
        blob = buffer.getvalue()
        if len(blob) < SHARE_MIN_BYTES:
            return False
        token = f"flowcore-shared-{type(obj).__name__}-{uuid.uuid4().hex}"
        self.blobs[token] = blob
        return token


def _plain_keys(mapping: dict[Any, Any]) -> bool:
    """Whether every key of ``mapping`` is a plain value (a context's names), so that a
    copy of it keyed apart from the call looks up the same (module docstring)."""
    return all(type(key) in _PLAIN for key in mapping)


class _Sharing:
    """``persistent_id`` of the call picklers: futures -> ("d", i), shared -> ("s", i)."""

    def _start(self, packer: BatchPacker) -> None:
        self.packer = packer
        self.deps: list[Any] = []
        self.tokens: list[str] = []
        self._dep_index: dict[Any, int] = {}
        self._token_index: dict[str, int] = {}

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _PLAIN:
            if kind is dict and id(obj) in self.packer._top_dicts:
                return self._shared(obj)
            return None
        if isinstance(obj, self.packer.future_type):
            key = getattr(obj, "key")  # noqa: B009 - typed as a plain object here
            index = self._dep_index.get(key)
            if index is None:
                index = self._dep_index[key] = len(self.deps)
                self.deps.append(obj)
            return ("d", index)
        if isinstance(obj, _NEVER_SHARED) or not hasattr(obj, "__dict__"):
            return None
        return self._shared(obj)

    def _shared(self, obj: Any) -> Any:
        token = self.packer.token(obj)
        if token is None:
            return None
        index = self._token_index.get(token)
        if index is None:
            index = self._token_index[token] = len(self.tokens)
            self.tokens.append(token)
        return ("s", index)


class _CallPickler(_Sharing, pickle.Pickler):
    def __init__(self, file: io.BytesIO, packer: BatchPacker) -> None:
        pickle.Pickler.__init__(self, file, protocol=pickle.HIGHEST_PROTOCOL)
        self._start(packer)


class _CloudCallPickler(_Sharing, cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, packer: BatchPacker) -> None:
        cloudpickle.Pickler.__init__(self, file, protocol=pickle.HIGHEST_PROTOCOL)
        self._start(packer)


class _BlobPickler(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, future_type: type) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.future_type = future_type

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) not in _PLAIN and isinstance(obj, self.future_type):
            raise _HoldsFuture
        return None


# -- on the worker ----------------------------------------------------------------------------

_cache: OrderedDict[str, Any] = OrderedDict()
_cache_lock = threading.Lock()


class _CallUnpickler(pickle.Unpickler):
    def __init__(self, payload: bytes, deps: list[Any], shared: list[Any]) -> None:
        super().__init__(io.BytesIO(payload))
        self.deps = deps
        self.shared = shared

    def persistent_load(self, pid: Any) -> Any:
        kind, index = pid
        return self.deps[index] if kind == "d" else self.shared[index]


def unpack(payload: bytes, deps: list[Any], tokens: list[str], blobs: list[bytes]) -> Any:
    """``(fn, args, kwargs)`` from :meth:`BatchPacker.pack`'s output and resolved values."""
    shared = [_shared_object(token, blob) for token, blob in zip(tokens, blobs)]
    return _CallUnpickler(payload, deps, shared).load()


def _shared_object(token: str, blob: bytes) -> Any:
    with _cache_lock:
        if token in _cache:
            _cache.move_to_end(token)
            return _cache[token]
    value = pickle.loads(blob)
    with _cache_lock:
        value = _cache.setdefault(token, value)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value
