"""Small mapping helpers shared by configuration and context (Prefect 1 names)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

__all__ = [
    "DotDict",
    "as_nested_dict",
    "dict_to_flatdict",
    "ensure_iterable",
    "flatdict_to_dict",
    "merge_dicts",
]


class DotDict(dict):  # type: ignore[type-arg]
    """A ``dict`` whose keys can also be read and written as attributes.

    >>> d = DotDict(a=1, b=DotDict(c=2))
    >>> d.a, d.b.c
    (1, 2)
    >>> d.z = 3
    >>> d["z"]
    3
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def copy(self) -> DotDict:
        return type(self)(self)

    def to_dict(self) -> dict[str, Any]:
        """A recursive copy made of plain dicts."""
        return as_nested_dict(self, dict)  # type: ignore[return-value]


def merge_dicts(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``base`` with ``update`` merged in, recursing into mappings.

    >>> merge_dicts({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
    {'a': {'b': 1, 'c': 3}}
    """
    merged = type(base)(base) if isinstance(base, dict) else dict(base)
    for key, value in update.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_dicts(current, value)
        else:
            merged[key] = value
    return merged  # type: ignore[return-value]


def as_nested_dict(obj: Any, dct_class: type = DotDict) -> Any:
    """Convert nested mappings (and lists of them) to ``dct_class``."""
    if isinstance(obj, Mapping):
        return dct_class({k: as_nested_dict(v, dct_class) for k, v in obj.items()})
    if isinstance(obj, (list, tuple, set)):
        return type(obj)(as_nested_dict(v, dct_class) for v in obj)
    return obj


def dict_to_flatdict(dct: Mapping[str, Any], parent: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys.

    >>> dict_to_flatdict({"a": {"b": 1}, "c": 2})
    {'a.b': 1, 'c': 2}
    """
    flat: dict[str, Any] = {}
    for key, value in dct.items():
        full = f"{parent}.{key}" if parent else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(dict_to_flatdict(value, full))
        else:
            flat[full] = value
    return flat


def flatdict_to_dict(flat: Mapping[str, Any], dct_class: type = dict) -> Any:
    """Inverse of :func:`dict_to_flatdict`.

    >>> flatdict_to_dict({"a.b": 1, "c": 2})
    {'a': {'b': 1}, 'c': 2}
    """
    result: MutableMapping[str, Any] = dct_class()
    for dotted, value in flat.items():
        node = result
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, dct_class())
        node[last] = value
    return result


def ensure_iterable(obj: Any) -> Iterator[Any] | Iterable[Any]:
    """Wrap a non-iterable (or a string) in a one-item list."""
    if isinstance(obj, (str, bytes)) or not isinstance(obj, Iterable):
        return [obj]
    return obj
