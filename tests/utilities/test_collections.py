"""``flowcore.utilities.collections`` (Prefect 1's helper names and behaviour)."""

from __future__ import annotations

import pickle

import pytest

from flowcore.utilities.collections import (
    CompoundKey,
    DotDict,
    as_nested_dict,
    dict_to_flatdict,
    ensure_iterable,
    flatdict_to_dict,
    flatten_seq,
    merge_dicts,
)


def test_dotdict_attribute_and_item_access() -> None:
    d = DotDict({"a": 1}, b=2)
    assert (d.a, d["b"]) == (1, 2)
    d.c = 3
    d["e"] = 4
    assert d["c"] == 3 and d.e == 4
    assert d.get("missing", 5) == 5 and "a" in d and len(d) == 4
    del d.a
    assert "a" not in d


def test_dotdict_missing_attribute() -> None:
    with pytest.raises(AttributeError, match="no key 'nope'"):
        DotDict().nope  # noqa: B018
    with pytest.raises(AttributeError):
        del DotDict().nope


def test_dotdict_keys_may_shadow_dict_methods() -> None:
    d = DotDict(update=1, items=2)
    assert d["update"] == 1 and d["items"] == 2
    assert sorted(d.keys()) == ["items", "update"]


def test_dotdict_repr_lists_sorted_keys() -> None:
    assert repr(DotDict()) == "<DotDict>"
    assert repr(DotDict(b=1, a=2)) == "<DotDict: 'a', 'b'>"


def test_dotdict_copy_is_shallow_and_same_type() -> None:
    inner = {"x": 1}
    d = DotDict(a=1, inner=inner)
    clone = d.copy()
    clone.a = 2
    assert d.a == 1 and clone.inner is inner and type(clone) is DotDict


def test_dotdict_to_dict_is_recursive() -> None:
    d = DotDict(a=DotDict(b=DotDict(c=1)), items=[DotDict(x=1)])
    plain = d.to_dict()
    assert plain == {"a": {"b": {"c": 1}}, "items": [{"x": 1}]}
    assert type(plain) is dict and type(plain["a"]) is dict and type(plain["items"][0]) is dict


def test_dotdict_equals_a_dict_and_pickles() -> None:
    d = DotDict(a=1, b=DotDict(c=2))
    assert d == {"a": 1, "b": {"c": 2}}
    assert pickle.loads(pickle.dumps(d)) == d


def test_merge_dicts_recurses_and_copies() -> None:
    base = {"a": {"b": 1, "c": 2}, "x": 1}
    update = {"a": {"c": 3, "d": {"e": 4}}, "y": 2}
    merged = merge_dicts(base, update)
    assert merged == {"a": {"b": 1, "c": 3, "d": {"e": 4}}, "x": 1, "y": 2}
    assert base == {"a": {"b": 1, "c": 2}, "x": 1}


def test_merge_dicts_replaces_non_mappings_and_keeps_the_type() -> None:
    assert merge_dicts({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert merge_dicts({"a": 5}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    merged = merge_dicts(DotDict(a=DotDict(b=1)), {"a": {"c": 2}})
    assert type(merged) is DotDict and type(merged.a) is DotDict
    assert merged.a == {"b": 1, "c": 2}


def test_as_nested_dict_converts_nested_mappings_and_sequences() -> None:
    nested = as_nested_dict({"a": {"b": [{"c": 1}], "t": ({"d": 2},)}})
    assert type(nested) is DotDict and type(nested.a) is DotDict
    assert type(nested.a.b[0]) is DotDict and nested.a.b[0].c == 1
    assert type(nested.a.t) is tuple and nested.a.t[0].d == 2
    assert as_nested_dict(DotDict(a=DotDict(b=1)), dict) == {"a": {"b": 1}}
    assert as_nested_dict(5) == 5


def test_dict_to_flatdict_uses_compound_keys() -> None:
    flat = dict_to_flatdict({"a": {"b": 1, "c": {"d": 2}}, "e": 3})
    assert flat == {("a", "b"): 1, ("a", "c", "d"): 2, ("e",): 3}
    assert all(isinstance(key, CompoundKey) for key in flat)


def test_dict_to_flatdict_drops_empty_dicts() -> None:
    assert dict_to_flatdict({"a": {}, "b": 1}) == {("b",): 1}


def test_flatdict_round_trip_and_class() -> None:
    nested = {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    assert flatdict_to_dict(dict_to_flatdict(nested)) == nested
    as_dotdict = flatdict_to_dict(dict_to_flatdict(nested), dct_class=DotDict)
    assert type(as_dotdict) is DotDict and type(as_dotdict.a.c) is DotDict


def test_flatdict_to_dict_keeps_plain_keys() -> None:
    assert flatdict_to_dict({CompoundKey(("a", "b")): 1, "a.b": 2}) == {"a": {"b": 1}, "a.b": 2}


def test_flatten_seq() -> None:
    assert list(flatten_seq([1, [2, [3, "ab"]], (4,), b"cd", set()])) == [1, 2, 3, "ab", 4, b"cd"]


def test_ensure_iterable() -> None:
    assert ensure_iterable("ab") == ["ab"]
    assert ensure_iterable(3) == [3]
    items = [1, 2]
    assert ensure_iterable(items) is items


def test_dotdict_takes_prefect_1_s_init_dict() -> None:
    """Prefect 1.4.1 (verified): ``DotDict(init_dict=None, **kwargs)``."""
    assert DotDict(init_dict={"a": 1}) == {"a": 1}
    assert DotDict({"a": 1}, b=2) == {"a": 1, "b": 2} and DotDict().to_dict() == {}
