"""Small mapping helpers shared by configuration and context (Prefect 1 names)."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

__all__ = [
    "CompoundKey",
    "DotDict",
    "as_nested_dict",
    "dict_to_flatdict",
    "ensure_iterable",
    "flatdict_to_dict",
    "flatten_seq",
    "merge_dicts",
]


def flatten_seq(seq: Iterable[Any]) -> Generator[Any, None, None]:
    """Yield the items of nested iterables in order; strings and bytes are items.

    >>> list(flatten_seq([1, [2, [3, "ab"]], (4,)]))
    [1, 2, 3, 'ab', 4]
    """
    for item in seq:
        if isinstance(item, Iterable) and not isinstance(item, (str, bytes)):
            yield from flatten_seq(item)
        else:
            yield item


class DotDict(dict):  # type: ignore[type-arg]
    """A ``dict`` whose keys can also be read and written as attributes.

    >>> d = DotDict(a=1, b=DotDict(c=2))
    >>> d.a, d.b.c
    (1, 2)
    >>> d.z = 3
    >>> d["z"], d
    (3, <DotDict: 'a', 'b', 'z'>)
    """

    def __init__(self, init_dict: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Prefect 1's signature: the keys of ``init_dict``, then ``kwargs``."""
        super().__init__()
        self.update(init_dict or {}, **kwargs)

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

    def __repr__(self) -> str:
        if not self:
            return f"<{type(self).__name__}>"
        return f"<{type(self).__name__}: {', '.join(sorted(repr(k) for k in self))}>"

    def copy(self) -> DotDict:
        return type(self)(self)

    def to_dict(self) -> dict[str, Any]:
        """A recursive copy made of plain dicts."""
        copied: dict[str, Any] = as_nested_dict(self, dict)
        return copied


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
    return merged


def as_nested_dict(obj: Any, dct_class: type = DotDict) -> Any:
    """Convert nested mappings (and lists of them) to ``dct_class``."""
    if isinstance(obj, Mapping):
        return dct_class({k: as_nested_dict(v, dct_class) for k, v in obj.items()})
    if isinstance(obj, (list, tuple, set)):
        return type(obj)(as_nested_dict(v, dct_class) for v in obj)
    return obj


class CompoundKey(tuple):  # type: ignore[type-arg]
    """The key of a flattened dict: the chain of keys leading to a value."""


def dict_to_flatdict(dct: Mapping[Any, Any], parent: CompoundKey | None = None) -> dict[Any, Any]:
    """Flatten nested dicts into ``{CompoundKey(path): value}`` (empty dicts vanish).

    >>> dict_to_flatdict({"a": {"b": 1}, "c": 2})
    {('a', 'b'): 1, ('c',): 2}
    """
    flat: dict[Any, Any] = {}
    parent = parent or CompoundKey()
    for key, value in dct.items():
        path = CompoundKey((*parent, key))
        if isinstance(value, dict):
            flat.update(dict_to_flatdict(value, path))
        else:
            flat[path] = value
    return flat


def flatdict_to_dict(flat: Mapping[Any, Any], dct_class: type | None = None) -> Any:
    """Inverse of :func:`dict_to_flatdict`; keys that are not CompoundKeys stay as they are.

    >>> flatdict_to_dict({CompoundKey(("a", "b")): 1, "c": 2})
    {'a': {'b': 1}, 'c': 2}
    """
    cls = dct_class or dict
    result: MutableMapping[Any, Any] = cls()
    for key, value in flat.items():
        if isinstance(key, CompoundKey):
            node = result
            for part in key[:-1]:
                node = node.setdefault(part, cls())
            node[key[-1]] = value
        else:
            result[key] = value
    return result


def ensure_iterable(obj: Any) -> Iterator[Any] | Iterable[Any]:
    """Wrap a non-iterable (or a string) in a one-item list."""
    if isinstance(obj, (str, bytes)) or not isinstance(obj, Iterable):
        return [obj]
    return obj
