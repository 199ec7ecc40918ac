"""The Result base class (placing, encoding, the bytes-level API), NoResult, PrefectResult and
ConstantResult."""

from __future__ import annotations

import copy
import json
import pickle
import re
from pathlib import Path
from typing import Any

import cloudpickle
import pendulum
import pytest

import flowcore
from flowcore.engine.result import NoResult, NoResultType, Result
from flowcore.engine.result import base as result_base
from flowcore.engine.results import ConstantResult, PrefectResult
from flowcore.engine.serializers import (
    CompressedSerializer,
    DateTimeSerializer,
    JSONSerializer,
    PickleSerializer,
)
from flowcore.exceptions import (
    FlowcoreException,
    LocationEscapeError,
    ResultNotImplementedError,
    SignatureError,
    TemplateKeyError,
)


class DictResult(Result):
    """A tiny real backend: the three primitives over a dict."""

    def __init__(self, store: dict[str, bytes] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = {} if store is None else store

    def _read_bytes(self, location: str) -> bytes:
        return self.store[location]

    def _write_bytes(self, location: str, data: bytes) -> None:
        self.store[location] = data

    def _exists(self, location: str) -> bool:
        return location in self.store


# -- construction ---------------------------------------------------------------------


def test_defaults() -> None:
    result = Result()
    assert result.value is None and result.location is None
    assert result.serializer == PickleSerializer()


def test_value_location_and_serializer_are_kept() -> None:
    serializer = JSONSerializer()
    result = Result(3, location="a/{x}.json", serializer=serializer)
    assert (result.value, result.location, result.serializer) == (3, "a/{x}.json", serializer)


def test_a_callable_location_becomes_the_formatter() -> None:
    def where(**kwargs: Any) -> str:
        return f"out/{kwargs['name']}.bin"

    result = Result(location=where)
    assert result.location is None
    assert result._formatter is where
    assert result.format(name="n").location == "out/n.bin"


def test_repr_shows_the_value() -> None:
    assert repr(Result(3)) == "<Result: 3>"
    assert repr(Result("x", location="loc")) == "<Result: 'x'>"


# -- copies ---------------------------------------------------------------------------


def test_copy_is_shallow_and_keeps_the_type() -> None:
    store: dict[str, bytes] = {}
    original = DictResult(store, value=[1], location="l")
    clone = original.copy()
    assert type(clone) is DictResult and clone == original and clone is not original
    assert clone.value is original.value and clone.store is store
    clone.location = "other"
    assert original.location == "l"


def test_from_value_drops_the_location() -> None:
    original = DictResult(value=1, location="l", serializer=JSONSerializer())
    new = original.from_value(2)
    assert type(new) is DictResult
    assert (new.value, new.location, new.serializer) == (2, None, JSONSerializer())
    assert (original.value, original.location) == (1, "l")


def test_from_value_keeps_the_formatter() -> None:
    original = Result(location=lambda **kw: "fixed")
    assert original.from_value(1).format().location == "fixed"


# -- format ---------------------------------------------------------------------------


def test_format_renders_a_template_into_a_copy() -> None:
    template = Result(location="{flow_name}/{task_name}-{map_index}.pkl")
    formatted = template.format(flow_name="f", task_name="t", map_index=3, unused=1)
    assert formatted.location == "f/t-3.pkl"
    assert template.location == "{flow_name}/{task_name}-{map_index}.pkl"
    assert formatted is not template


def test_format_without_location_uses_the_default_location() -> None:
    location = Result().format(anything=1).location
    assert location is not None and location.endswith(".prefect_result")


def test_format_error_names_the_unknown_key_and_lists_the_known_ones() -> None:
    template = Result(location="out/{day}/{task_name}.txt")
    with pytest.raises(ValueError) as info:
        template.format(task_name="t", flow_name="f")
    message = str(info.value)
    assert "out/{day}/{task_name}.txt" in message
    assert "unknown key 'day'" in message
    assert "known keys: flow_name, task_name" in message
    # Prefect 1 let str.format's KeyError through; code catching it keeps working
    assert isinstance(info.value, KeyError) and isinstance(info.value, TemplateKeyError)
    with pytest.raises(KeyError, match="unknown key 'day'"):
        template.write(1, task_name="t")


def test_default_location_shape() -> None:
    location = Result().default_location
    match = re.fullmatch(
        r"(\d{4})/(\d{1,2})/(\d{1,2})/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
        r"[0-9a-f]{12})\.prefect_result",
        location,
    )
    assert match is not None, location
    year, month, day, _ = match.groups()
    assert not month.startswith("0") and not day.startswith("0")
    today = pendulum.now("UTC")
    assert int(year) in (today.year, today.subtract(days=1).year)
    assert Result().default_location != location  # a new uuid each time


# -- storage operations ---------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        lambda r: r.exists("loc"),
        lambda r: r.read("loc"),
        lambda r: r.write(1),
        lambda r: r.write(1, task_name="t"),
    ],
    ids=["exists", "read", "write", "write-kwargs"],
)
def test_base_result_has_no_storage(operation: Any) -> None:
    with pytest.raises(ResultNotImplementedError) as info:
        operation(Result(location="loc"))
    assert isinstance(info.value, NotImplementedError)
    assert isinstance(info.value, FlowcoreException)
    message = str(info.value)
    assert message.startswith("Result has no storage")
    assert "LocalResult" in message


def test_result_not_implemented_error_lives_at_prefects_path_too() -> None:
    assert result_base.ResultNotImplementedError is ResultNotImplementedError


def test_a_backend_gets_write_read_exists_from_three_primitives() -> None:
    backend = DictResult(location="{flow_name}/{task_name}.pkl")
    written = backend.write({"v": 1}, flow_name="f", task_name="t")
    assert type(written) is DictResult
    assert (written.value, written.location) == ({"v": 1}, "f/t.pkl")
    assert backend.location == "{flow_name}/{task_name}.pkl" and backend.value is None
    assert backend.store["f/t.pkl"] == PickleSerializer().serialize({"v": 1})
    read = backend.read("f/t.pkl")
    assert (read.value, read.location) == ({"v": 1}, "f/t.pkl")
    assert backend.exists("{flow_name}/{task_name}.pkl", flow_name="f", task_name="t")
    assert not backend.exists("f/missing.pkl")


def test_write_uses_the_serializer() -> None:
    backend = DictResult(location="x.json", serializer=JSONSerializer())
    backend.write([1, 2])
    assert backend.store["x.json"] == b"[1, 2]"
    compressed = DictResult(
        location="z", serializer=CompressedSerializer(JSONSerializer(), format="zlib")
    )
    assert compressed.read(compressed.write("hello").location).value == "hello"  # type: ignore[arg-type]


def test_read_of_a_missing_location_raises_and_changes_nothing() -> None:
    backend = DictResult(location="x")
    with pytest.raises(KeyError):
        backend.read("nowhere")
    assert backend.location == "x" and backend.value is None


# -- equality -------------------------------------------------------------------------


def test_equality_is_type_and_public_attributes() -> None:
    assert Result(1, location="a") == Result(1, location="a")
    assert Result(1) != Result(2)
    assert Result(1, location="a") != Result(1, location="b")
    assert Result(1) != Result(1, serializer=JSONSerializer())
    assert Result(1) != DictResult(value=1)
    assert DictResult({"k": b""}, value=1) != DictResult({}, value=1)
    assert Result(1) != 1


def test_equality_ignores_private_attributes() -> None:
    assert Result(location=lambda **kw: "a") == Result(location=lambda **kw: "b")


def test_hash_is_identity() -> None:
    one, two = Result(1), Result(1)
    assert len({one, two}) == 2


# -- NoResult -------------------------------------------------------------------------


def test_no_result_is_a_valueless_singleton() -> None:
    assert isinstance(NoResult, NoResultType) and isinstance(NoResult, Result)
    assert NoResult.value is None and NoResult.location is None
    assert NoResult == NoResultType()
    assert NoResult != Result() and Result() != NoResult
    assert repr(NoResult) == "<NoResultType: None>"


def test_copies_of_no_result_are_the_singleton() -> None:
    assert NoResult.copy() is NoResult
    assert copy.copy(NoResult) is NoResult
    assert copy.deepcopy(NoResult) is NoResult
    assert pickle.loads(pickle.dumps(NoResult)) is NoResult
    assert cloudpickle.loads(cloudpickle.dumps(NoResult)) is NoResult


def test_no_result_from_value_returns_a_new_result() -> None:
    new = NoResult.from_value(3)
    assert type(new) is Result and new.value == 3
    assert NoResult.value is None


def test_no_result_cannot_be_mutated() -> None:
    with pytest.raises(AttributeError, match="shared singleton"):
        NoResult.value = 3
    with pytest.raises(AttributeError, match="shared singleton"):
        NoResult.location = "somewhere"
    assert NoResult.value is None and NoResult.location is None


def test_no_result_format_and_write_leave_it_untouched() -> None:
    formatted = NoResult.format(task_name="t")
    assert type(formatted) is Result and formatted.location is not None
    with pytest.raises(ResultNotImplementedError):
        NoResult.write(5)
    with pytest.raises(ResultNotImplementedError):
        NoResult.read("loc")
    assert NoResult.value is None and NoResult.location is None


# -- PrefectResult --------------------------------------------------------------------


def test_prefect_result_defaults_to_json() -> None:
    assert PrefectResult().serializer == JSONSerializer()
    assert PrefectResult(serializer=DateTimeSerializer()).serializer == DateTimeSerializer()


def test_prefect_result_rejects_other_serializers() -> None:
    with pytest.raises(
        TypeError, match="PrefectResult only supports JSONSerializer or DateTimeSerializer"
    ):
        PrefectResult(serializer=PickleSerializer())
    result = PrefectResult()
    with pytest.raises(TypeError, match="only supports JSONSerializer"):
        result.serializer = PickleSerializer()
    assert result.serializer == JSONSerializer()


def test_prefect_result_write_puts_the_json_in_the_location() -> None:
    template = PrefectResult()
    written = template.write({"a": [1, 2]}, task_name="ignored")
    assert type(written) is PrefectResult
    assert written.location == '{"a": [1, 2]}'
    assert written.value == {"a": [1, 2]}
    assert template.value is None and template.location is None


def test_prefect_result_read_parses_the_location() -> None:
    read = PrefectResult().read("[1, 2]")
    assert (read.value, read.location) == ([1, 2], "[1, 2]")


def test_prefect_result_exists_means_readable() -> None:
    result = PrefectResult()
    assert result.exists('{"a": 1}') and result.exists("3")
    assert not result.exists("not json {")
    dates = PrefectResult(serializer=DateTimeSerializer())
    written = dates.write(pendulum.datetime(2020, 1, 1, tz="UTC"))
    assert written.location == "2020-01-01T00:00:00Z"
    assert dates.exists(written.location)
    assert dates.read(written.location).value == pendulum.datetime(2020, 1, 1, tz="UTC")
    assert not dates.exists("yesterday-ish")


def test_prefect_result_with_a_json_unfriendly_value_fails_loudly() -> None:
    with pytest.raises(TypeError):
        PrefectResult().write(object())


def test_prefect_result_pickles_and_compares() -> None:
    written = PrefectResult().write({"k": 1})
    assert pickle.loads(pickle.dumps(written)) == written
    assert written == PrefectResult(value={"k": 1}, location=json.dumps({"k": 1}))


# -- ConstantResult -------------------------------------------------------------------


def test_constant_result_reads_itself_and_always_exists() -> None:
    constant = ConstantResult(value=5)
    assert constant.read("anything") is constant
    assert constant.exists("anything") and constant.exists("{x}", y=1)
    assert constant.value == 5


def test_constant_result_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="Cannot write values to `ConstantResult` types."):
        ConstantResult(value=5).write(6)


def test_constant_result_takes_no_serializer() -> None:
    with pytest.raises(ValueError, match="Can't pass a serializer to a ConstantResult."):
        ConstantResult(value=1, serializer=JSONSerializer())


def test_constant_result_from_value_and_equality() -> None:
    constant = ConstantResult(value=1, location="here")
    copy_ = constant.from_value(2)
    assert type(copy_) is ConstantResult and copy_.value == 2 and copy_.location is None
    assert ConstantResult(value=1) == ConstantResult(value=1) != Result(value=1)


def test_write_at_uses_the_location_as_given(tmp_path: Path) -> None:
    from flowcore.engine.results import LocalResult

    result = LocalResult(dir=tmp_path, location="{ignored}.pkl")
    written = result.write_at("literal-{braces}.pkl", 5)
    assert written.location == str(tmp_path / "literal-{braces}.pkl")
    assert result.read(written.location).value == 5
    assert result.location == "{ignored}.pkl"


# -- placing, encoding and the bytes-level API in the base ----------------------------


@pytest.mark.parametrize("location", ["../x", "a/../../x", "/x", "//x", "..", "~/x-from-a-value"])
def test_keys_that_leave_the_store_are_refused_before_any_primitive_runs(location: str) -> None:
    backend = DictResult(location="{where}")
    with pytest.raises(LocationEscapeError) as info:
        backend.write(1, where=location)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FlowcoreException)
    assert "DictResult: location" in str(info.value) and "template '{where}'" in str(info.value)
    assert backend.store == {}


def test_keys_are_normalised_so_the_checked_key_is_the_stored_key() -> None:
    backend = DictResult(location="a/{x}.pkl")
    written = backend.write(1, x="./b//../c")
    assert written.location == "a/c.pkl" and list(backend.store) == ["a/c.pkl"]
    assert backend.read("a/./c.pkl").value == 1


def test_a_template_literal_directory_bounds_its_values() -> None:
    backend = DictResult(location="safe/{x}.pkl")
    with pytest.raises(LocationEscapeError, match="escapes 'safe'"):
        backend.write(1, x="../other")
    with pytest.raises(LocationEscapeError):
        backend.exists("safe/{x}.pkl", x="../other")


def test_encode_and_decode_go_through_the_serializer() -> None:
    backend = DictResult(serializer=JSONSerializer())
    assert backend.encode({"a": 1}) == b'{"a": 1}'
    assert backend.decode(b'{"a": 1}', "loc") == {"a": 1}


def test_decode_refuses_unsigned_bytes_under_a_key_before_deserializing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Refusing(JSONSerializer):
        def deserialize(self, value: bytes) -> Any:
            raise AssertionError("deserialized unverified bytes")

    monkeypatch.setitem(flowcore.config.results, "signing_key", "k")
    backend = DictResult(serializer=Refusing())
    with pytest.raises(SignatureError, match="'some/where'"):
        backend.decode(b'{"a": 1}', "some/where")
    signed = DictResult(serializer=JSONSerializer()).encode([1])
    assert signed.startswith(b"flowcore-hmac-sha256:") and signed.endswith(b"\n[1]")
    assert DictResult(serializer=JSONSerializer()).decode(signed, "x") == [1]


def test_bytes_methods_use_the_primitives_after_placing() -> None:
    backend = DictResult()
    assert backend.write_bytes_at("a/./b.bin", b"raw") == "a/b.bin"
    assert backend.store == {"a/b.bin": b"raw"}
    assert backend.read_bytes_at("a/b.bin") == b"raw"
    with pytest.raises(LocationEscapeError):
        backend.read_bytes_at("../b.bin")


def test_delete_and_list_need_a_backend_that_implements_them() -> None:
    operations: list[Any] = [
        lambda: DictResult().delete("x"),
        lambda: DictResult().list(),
        lambda: Result().write_bytes_at("x", b""),
    ]
    for operation in operations:
        with pytest.raises(ResultNotImplementedError, match="has no storage"):
            operation()
    assert Result().remove_stale_temporaries() == 0 and NoResult.remove_stale_temporaries() == 0


def test_prefect_result_write_at_still_writes_into_the_location_text() -> None:
    written = PrefectResult().write_at("2024/1/1/x.prefect_result", {"k": 1})
    assert written.location == '{"k": 1}' and written.value == {"k": 1}


@pytest.mark.parametrize("location", ["somewhere", None])
def test_a_result_without_storage_says_so_whatever_the_location(location: Any) -> None:
    # Prefect 1.4.1: the base Result's exists/read/write raise ResultNotImplementedError
    # (even for a location of None, which its own tests use).
    from flowcore.exceptions import ResultNotImplementedError

    result = Result(value=3)
    for call in (result.exists, result.read, result.write):
        with pytest.raises(ResultNotImplementedError):
            call(location)
