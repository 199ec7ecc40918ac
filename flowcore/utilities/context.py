"""``flowcore.context``: Prefect 1's context, kept cheap.

Prefect 1's context is a thread-local dict that deep-merges the whole configuration on
every entry; that merge was ~90% of its per-task cost. Here the context is one plain
``dict`` per scope, held in a :class:`contextvars.ContextVar`:

* reading (``context.flow_name``, ``context.get("map_index")``) is a var lookup plus a
  dict lookup;
* ``with context(a=1):`` pushes a shallow copy of the current dict updated with the new
  keys, and restores the previous dict on exit, so updates made inside the block are
  dropped with it, as in Prefect 1;
* only a ``config=`` key is deep-merged, and only when it is given;
* each thread starts from a fresh base scope (``{"config": flowcore.config, ...}``), so
  keys set in one thread are invisible in another; executors hand the context to worker
  threads and processes explicitly.

The base scope holds the *live* ``flowcore.config``, not a copy.

``Context(dict, **kwargs)`` builds a *detached* context, as Prefect 1's constructor does: its
own dict, started from ``config.context`` with the given keys on top (a ``config`` key is
deep-merged into this module's ``config``). Only the module's ``context`` follows the
running scope. Reading a missing key raises ``AttributeError: 'Context' object has no
attribute 'key'``, Prefect 1's text (verified against prefect 1.4.1).

Pickling: ``flowcore.context`` pickles by reference (see :meth:`Context.__reduce__`); a
detached context refuses with Prefect 1's TypeError, which tells the user to use
``flowcore.context``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

from flowcore import configuration
from flowcore.utilities.collections import as_nested_dict, merge_dicts

__all__ = ["Context", "context"]

config = configuration.config
"""The configuration new scopes and detached contexts start from (the live
``flowcore.config``; tests may replace it, as Prefect 1's tests replace
``prefect.utilities.context.config``)."""

_PICKLING_REFUSED = (
    "Pickling context objects is explicitly not supported. You should always access "
    "context as an attribute of the `flowcore` module, as in `flowcore.context`"
)

_scope: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "flowcore_context", default=None
)


def _base_scope() -> dict[str, Any]:
    """What every scope starts from: the config, its ``context`` section, the secrets,
    and ``logger``, the ``flowcore`` logger (Prefect 1's context holds its root logger
    from import on: a flow's state handler logs through it)."""
    from flowcore.utilities.logging import get_logger  # (it imports this module)

    base: dict[str, Any] = {"config": config, "logger": get_logger()}
    base.update(config.get("context", {}))
    base["secrets"] = dict(config.get("context", {}).get("secrets", {}) or {})
    return base


def current() -> dict[str, Any]:
    """The dict of the current scope (created on first use in a thread)."""
    data = _scope.get()
    if data is None:
        data = _base_scope()
        _scope.set(data)
    return data


def push(mapping: dict[str, Any]) -> contextvars.Token[dict[str, Any] | None]:
    """Make ``mapping`` (a complete scope dict) current; pair with :func:`pop`."""
    return _scope.set(mapping)


def pop(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _scope.reset(token)


def _layered(data: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    layer = {**data, **updates}
    new_config = updates.get("config")
    if new_config is not None and new_config is not data.get("config"):
        patch = as_nested_dict(new_config, configuration.Config)
        layer["config"] = merge_dicts(data.get("config") or configuration.Config(), patch)
    return layer


class _Scope:
    __slots__ = ("_target", "_updates", "_saved")

    def __init__(self, target: Context, updates: dict[str, Any]) -> None:
        self._target = target
        self._updates = updates
        self._saved: list[Any] = []

    def __enter__(self) -> Context:
        own = self._target._own
        if own is None:
            self._saved.append(_scope.set(_layered(current(), self._updates)))
        else:
            self._saved.append(own)
            object.__setattr__(self._target, "_own", _layered(own, self._updates))
        return self._target

    def __exit__(self, *exc: object) -> None:
        saved = self._saved.pop()
        if self._target._own is None:
            _scope.reset(saved)
        else:
            object.__setattr__(self._target, "_own", saved)


class Context:
    """Attribute-style view of the current scope, or a detached context of its own.

    ``flowcore.context`` follows the running scope (see the module docstring);
    ``Context(dict, **kwargs)`` is a detached context that starts from ``config.context``
    with the given keys on top.

    >>> from flowcore import context
    >>> with context(answer=42):
    ...     context.answer, context.get("missing", "n/a"), "answer" in context
    (42, 'n/a', True)
    >>> "answer" in context
    False
    >>> Context({"a": 1}, b=2).b
    2
    """

    __slots__ = ("_own",)

    def __init__(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        data: dict[str, Any] = {"config": config}
        data.update(config.get("context", {}))
        data.update(dict(*args, **kwargs))
        given = data["config"]
        if given is not config:
            data["config"] = merge_dicts(config, as_nested_dict(given, configuration.Config))
        object.__setattr__(self, "_own", data)

    @classmethod
    def _following_the_scope(cls) -> Context:
        live = cls.__new__(cls)
        object.__setattr__(live, "_own", None)
        return live

    def _data(self) -> dict[str, Any]:
        own: dict[str, Any] | None = self._own
        return current() if own is None else own

    def __call__(self, *args: Mapping[str, Any], **kwargs: Any) -> _Scope:
        updates: dict[str, Any] = {}
        for mapping in args:
            updates.update(mapping)
        updates.update(kwargs)
        return _Scope(self, updates)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data()[name]
        except KeyError:
            raise AttributeError(f"'Context' object has no attribute '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data()[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._data()[name]
        except KeyError:
            raise AttributeError(f"'Context' object has no attribute '{name}'") from None

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return f"<Context: {sorted(self._data())}>"

    def __reduce__(self) -> str:
        """``flowcore.context`` pickles by reference: the unpickled object is the receiving
        process's own ``flowcore.context``, which shows that process's (or thread's) current
        scope. So a task that uses ``from flowcore import context`` runs on process-based
        executors, where Prefect 1 failed to pickle it; the scope's contents never travel
        this way (executors hand them over explicitly). A detached ``Context(...)`` refuses
        with Prefect 1's TypeError."""
        if self._own is not None:
            raise TypeError(_PICKLING_REFUSED)
        return "context"

    def get(self, key: str, default: Any = None) -> Any:
        return self._data().get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self._data().setdefault(key, default)

    def keys(self) -> list[str]:
        return list(self._data())

    def items(self) -> list[tuple[str, Any]]:
        return list(self._data().items())

    def values(self) -> list[Any]:
        return list(self._data().values())

    def update(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        """Update the current scope in place (it persists until the scope ends)."""
        data = self._data()
        for mapping in args:
            data.update(mapping)
        data.update(kwargs)

    def clear(self) -> None:
        """Reset to the keys a fresh scope starts with (config and ``config.context``)."""
        data = self._data()
        data.clear()
        data.update(_base_scope())

    def copy(self) -> Context:
        """A detached :class:`Context` holding the current keys (Prefect 1's ``copy``)."""
        return Context(self._data())

    def to_dict(self) -> dict[str, Any]:
        """A recursive copy of the current scope made of plain dicts (``config`` included)."""
        return as_nested_dict(self._data(), dict)  # type: ignore[no-any-return]


context = Context._following_the_scope()
