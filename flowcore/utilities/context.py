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
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

from flowcore import configuration
from flowcore.utilities.collections import as_nested_dict, merge_dicts

__all__ = ["Context", "context"]

_scope: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "flowcore_context", default=None
)


def _base_scope() -> dict[str, Any]:
    config = configuration.config
    base: dict[str, Any] = {"config": config}
    base.update(config.get("context", {}))
    base["secrets"] = dict(config.get_path("context.secrets", {}) or {})
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


def _layered(updates: Mapping[str, Any]) -> dict[str, Any]:
    data = current()
    layer = {**data, **updates}
    new_config = updates.get("config")
    if new_config is not None and new_config is not data.get("config"):
        patch = as_nested_dict(new_config, configuration.Config)
        layer["config"] = merge_dicts(data.get("config") or configuration.Config(), patch)
    return layer


class _Scope:
    __slots__ = ("_updates", "_tokens")

    def __init__(self, updates: dict[str, Any]) -> None:
        self._updates = updates
        self._tokens: list[contextvars.Token[dict[str, Any] | None]] = []

    def __enter__(self) -> Context:
        self._tokens.append(_scope.set(_layered(self._updates)))
        return context

    def __exit__(self, *exc: object) -> None:
        _scope.reset(self._tokens.pop())


class Context:
    """Attribute-style view of the current scope (see the module docstring).

    >>> from flowcore import context
    >>> with context(answer=42):
    ...     context.answer, context.get("missing", "n/a"), "answer" in context
    (42, 'n/a', True)
    >>> "answer" in context
    False
    """

    __slots__ = ()

    def __call__(self, *args: Mapping[str, Any], **kwargs: Any) -> _Scope:
        updates: dict[str, Any] = {}
        for mapping in args:
            updates.update(mapping)
        updates.update(kwargs)
        return _Scope(updates)

    def __getattr__(self, name: str) -> Any:
        try:
            return current()[name]
        except KeyError:
            raise AttributeError(f"flowcore.context has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        current()[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del current()[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return current()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        current()[key] = value

    def __delitem__(self, key: str) -> None:
        del current()[key]

    def __contains__(self, key: object) -> bool:
        return key in current()

    def __iter__(self) -> Iterator[str]:
        return iter(list(current()))

    def __len__(self) -> int:
        return len(current())

    def __repr__(self) -> str:
        return f"<Context: {sorted(current())}>"

    def __reduce__(self) -> str:
        """Pickles by reference: the unpickled object is the receiving process's own
        ``flowcore.context``, which shows that process's (or thread's) current scope. So a
        task that uses ``from flowcore import context`` runs on process-based executors,
        where Prefect 1 failed to pickle it; the scope's contents never travel this way
        (executors hand them over explicitly)."""
        return "context"

    def get(self, key: str, default: Any = None) -> Any:
        return current().get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        return current().setdefault(key, default)

    def keys(self) -> list[str]:
        return list(current())

    def items(self) -> list[tuple[str, Any]]:
        return list(current().items())

    def values(self) -> list[Any]:
        return list(current().values())

    def update(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        """Update the current scope in place (it persists until the scope ends)."""
        data = current()
        for mapping in args:
            data.update(mapping)
        data.update(kwargs)

    def clear(self) -> None:
        data = current()
        data.clear()
        data.update(_base_scope())

    def to_dict(self) -> dict[str, Any]:
        """A recursive copy of the current scope made of plain dicts (``config`` included)."""
        return as_nested_dict(current(), dict)  # type: ignore[no-any-return]


context = Context()
