"""One contract for every storage Result: LocalResult on a temporary directory, S3Result
on moto's S3 server and GCSResult on fake-gcs-server (real processes, see tests/servers.py)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import flowcore
from flowcore.engine.result import Result
from flowcore.engine.results import GCSResult, LocalResult, S3Result
from flowcore.engine.serializers import CompressedSerializer, JSONSerializer
from flowcore.exceptions import (
    LocationEscapeError,
    ResultStorageError,
    SignatureError,
    ValueNotFoundError,
)

Factory = Callable[..., Result]


@pytest.fixture(params=["local", "s3", "gcs"])
def make_result(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """Builds a Result of the backend under test, each test with its own empty root."""
    if request.param == "local":
        return lambda **kwargs: LocalResult(dir=tmp_path / "results", **kwargs)
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return lambda **kwargs: S3Result(bucket=bucket, **kwargs)
    bucket = request.getfixturevalue("gcs_bucket")
    return lambda **kwargs: GCSResult(bucket=bucket, **kwargs)


def test_write_then_read_round_trip(make_result: Factory) -> None:
    result = make_result(location="values/{name}.pkl")
    written = result.write({"a": [1, 2]}, name="first")
    assert written.value == {"a": [1, 2]}
    assert written.location is not None and written.location.endswith("values/first.pkl")
    assert result.read(written.location).value == {"a": [1, 2]}
    assert result.value is None and result.location == "values/{name}.pkl"


def test_exists_before_and_after_write(make_result: Factory) -> None:
    result = make_result(location="x/{n}.bin")
    assert not result.exists("x/{n}.bin", n=1)
    result.write(b"payload", n=1)
    assert result.exists("x/{n}.bin", n=1)
    assert not result.exists("x/{n}.bin", n=2)


def test_overwrite_replaces_value(make_result: Factory) -> None:
    result = make_result(location="same.pkl")
    result.write(1)
    location = result.write(2).location
    assert location is not None
    assert result.read(location).value == 2


def test_callable_location(make_result: Factory) -> None:
    result = make_result(location=lambda **kw: f"by-callable/{kw['day']}.pkl")
    written = result.write("v", day="monday")
    assert written.location is not None and written.location.endswith("by-callable/monday.pkl")
    assert result.read(written.location).value == "v"


def test_default_location_when_no_template(make_result: Factory) -> None:
    result = make_result()
    first, second = result.write(1), result.write(2)
    assert first.location != second.location
    assert first.location is not None and second.location is not None
    assert result.read(first.location).value == 1
    assert result.read(second.location).value == 2


@pytest.mark.parametrize(
    "serializer", [JSONSerializer(), CompressedSerializer(JSONSerializer(), format="gzip")]
)
def test_other_serializers(make_result: Factory, serializer: Any) -> None:
    result = make_result(location="data.json", serializer=serializer)
    written = result.write({"k": "v"})
    assert written.location is not None
    assert result.read(written.location).value == {"k": "v"}


def test_unknown_template_key_names_the_key_and_the_known_keys(make_result: Factory) -> None:
    result = make_result(location="{day}/out.pkl")
    with pytest.raises(ValueError, match=r"unknown key 'day'; known keys: month, year"):
        result.write(1, year=2024, month=3)


@pytest.mark.parametrize(
    "template, value",
    [
        ("safe/{name}.pkl", "../../escape"),
        ("safe/{name}.pkl", "a/../../escape"),
        ("safe/{name}.pkl", "../sibling"),
        ("{name}.pkl", "/etc/flowcore-escape"),
    ],
)
def test_location_from_a_value_cannot_escape_the_root(
    make_result: Factory, template: str, value: str
) -> None:
    result = make_result(location=template)
    with pytest.raises(ValueError, match="escapes"):
        result.write("nope", name=value)
    with pytest.raises(ValueError, match="escapes"):
        result.exists(template, name=value)


def test_an_absolute_path_inside_a_template_literal_stays_under_it(make_result: Factory) -> None:
    result = make_result(location="safe/{name}.pkl")
    written = result.write(1, name="/nested")
    assert written.location is not None and written.location.endswith("nested.pkl")
    assert result.read(written.location).value == 1


def test_dots_that_stay_inside_are_allowed(make_result: Factory) -> None:
    result = make_result(location="a/{name}.pkl")
    written = result.write(5, name="b/../c")
    assert written.location is not None
    assert result.read(written.location).value == 5


def test_reading_a_missing_location_is_a_storage_error_and_file_not_found(
    make_result: Factory,
) -> None:
    """(Prefect 1's ``LocalResult.read`` raised ``FileNotFoundError``: code that catches it
    keeps working, with every backend.)"""
    result = make_result()
    with pytest.raises(ValueNotFoundError) as info:
        result.read("no/such/thing.pkl")
    assert isinstance(info.value, ResultStorageError)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        result.read_bytes_at("no/such.bin")


def test_unreadable_bytes_raise_on_read(make_result: Factory) -> None:
    result = make_result(location="raw.bin", serializer=JSONSerializer())
    written = result.write("text")
    assert written.location is not None
    with pytest.raises(Exception):  # noqa: B017 - any deserialisation error
        make_result(serializer=CompressedSerializer(JSONSerializer(), format="gzip")).read(
            written.location
        )


def test_pickles_without_its_client_and_works_after(make_result: Factory) -> None:
    result = make_result(location="p.pkl")
    result.write("before")
    clone = cloudpickle.loads(cloudpickle.dumps(result))
    assert "_client" not in clone.__dict__ and "_gcs_bucket" not in clone.__dict__
    assert clone == result
    written = clone.write("after")
    assert written.location is not None
    assert result.read(written.location).value == "after"
    assert pickle.loads(pickle.dumps(clone)) == clone


def test_from_value_and_format_do_not_touch_storage(make_result: Factory) -> None:
    result = make_result(location="{x}.pkl")
    carried = result.from_value(3)
    assert carried.value == 3 and carried.location is None
    formatted = result.format(x="seven")
    assert formatted.location is not None and formatted.location.endswith("seven.pkl")
    assert not result.exists("{x}.pkl", x="seven")


# -- escapes: every way a location reaches storage is checked against the root -------


@pytest.mark.parametrize("value", ["../../y", "/tmp/flowcore-escape-y", "~/y", "a/../../y"])
def test_a_callable_location_cannot_escape_the_root(make_result: Factory, value: str) -> None:
    result = make_result(location=lambda **kw: f"{kw['x']}.pkl")
    with pytest.raises(LocationEscapeError, match="escapes") as info:
        result.write("nope", x=value)
    assert isinstance(info.value, ValueError)
    assert f"{value}.pkl" in str(info.value) and "a callable location" in str(info.value)
    assert result.list() == []


def test_an_interpolated_home_is_not_expanded(make_result: Factory) -> None:
    result = make_result(location="{name}.pkl")
    with pytest.raises(LocationEscapeError, match="'~'"):
        result.write("nope", name="~/y")
    with pytest.raises(LocationEscapeError):
        result.exists("{name}.pkl", name="~/y")
    assert result.list() == []


def test_the_escape_message_names_the_class_location_template_root_and_fix(
    make_result: Factory,
) -> None:
    result = make_result(location="safe/{name}.pkl")
    with pytest.raises(LocationEscapeError) as info:
        result.write("nope", name="../../out")
    message = str(info.value)
    assert message.startswith(type(result).__name__ + ": location 'safe/../../out.pkl'")
    assert "template 'safe/{name}.pkl'" in message
    assert "root" in message and result._describe_root() in message
    assert "may not contain '..', absolute paths or '~', or lead through symlinks" in message


def _operations_at(result: Result, location: str) -> list[Callable[[], Any]]:
    """Every operation of ``result`` that takes a location, at ``location``, but ``list``."""
    return [
        lambda: result.write_bytes_at(location, b"nope"),
        lambda: result.read_bytes_at(location),
        lambda: result.write_at(location, "nope"),
        lambda: result.read(location),
        lambda: result.exists(location),
        lambda: result.read_if_exists(location),
        lambda: result.delete(location),
        lambda: result.stat(location),
    ]


@pytest.mark.parametrize("location", ["../x.bin", "a/../../x.bin", "/etc/flowcore-x.bin", "../"])
def test_given_locations_cannot_escape_the_root(make_result: Factory, location: str) -> None:
    result = make_result()
    for operation in [*_operations_at(result, location), lambda: result.list(location)]:
        with pytest.raises(LocationEscapeError):
            operation()
    assert result.list() == []


@pytest.mark.parametrize("template", ["s3://bucket/data/{name}.pkl", "gs://b/{name}.pkl"])
def test_a_url_as_a_location_is_refused_naming_the_fix(make_result: Factory, template: str) -> None:
    # (on S3 it was written at the key "s3:/bucket/data/x.pkl", a slash dropped)
    result = make_result(location=template)
    with pytest.raises(LocationEscapeError, match="is a URL; a location is a path inside"):
        result.write("nope", name="x")
    assert result.list() == []


def test_a_key_with_a_leading_slash_says_keys_are_relative_to_the_bucket(
    request: pytest.FixtureRequest,
) -> None:
    bucket = request.getfixturevalue("s3_bucket")
    result = S3Result(bucket=bucket, location="/data/{name}.pkl")
    with pytest.raises(LocationEscapeError, match="starts with '/'; keys are relative to"):
        result.write("nope", name="x")


@pytest.mark.parametrize("location", ["", ".", "./"])
def test_a_location_that_is_the_root_itself_is_refused(make_result: Factory, location: str) -> None:
    """The root is a directory, not a value: reading it, writing over it (on disk: a
    temporary file beside it, in the root's parent) or deleting it are refused up front."""
    result = make_result()
    for operation in _operations_at(result, location):
        with pytest.raises(LocationEscapeError, match="must name a file inside it") as info:
            operation()
        assert f"renders to the root {result._describe_root()!r} itself" in str(info.value)
    assert result.list(location) == result.list() == []  # listing the root is fine


@pytest.mark.parametrize("template", ["{name}", "safe/{name}"])
@pytest.mark.parametrize("value", ["", "."])
def test_a_template_rendering_to_its_directory_names_the_template(
    make_result: Factory, template: str, value: str
) -> None:
    result = make_result(location=template)
    with pytest.raises(LocationEscapeError, match="must name a file inside it") as info:
        result.write("nope", name=value)
    assert f"(from template {template!r}) renders to " in str(info.value)
    with pytest.raises(LocationEscapeError, match="itself"):
        result.read_if_exists(template, name=value)
    assert result.list() == []


def test_a_nul_character_in_a_location_is_a_clear_error(make_result: Factory) -> None:
    result = make_result(location="{name}.pkl")
    with pytest.raises(LocationEscapeError, match="contains a NUL character") as info:
        result.write("nope", name="a\x00b")
    assert "(from template '{name}.pkl')" in str(info.value)
    for operation in (result.read_if_exists, result.exists):
        with pytest.raises(LocationEscapeError, match="contains a NUL character"):
            operation("{name}.pkl", name="a\x00b")
    with pytest.raises(LocationEscapeError, match="contains a NUL character"):
        result.list("a\x00b/")
    assert result.list() == []


@pytest.mark.parametrize("returned", [5, None, b"bytes.pkl"])
def test_a_callable_location_must_return_a_str(make_result: Factory, returned: Any) -> None:
    result = make_result(location=lambda **kw: returned)
    with pytest.raises(TypeError, match="it must return a str") as info:
        result.write("nope")
    assert f"returned {returned!r} (of type {type(returned).__name__})" in str(info.value)
    assert result.list() == []


# -- the bytes-level API (cache stores) ------------------------------------------------


def test_bytes_round_trip_exactly(make_result: Factory) -> None:
    result = make_result()
    data = bytes(range(256)) * 3
    location = result.write_bytes_at("raw/a.bin", data)
    assert location.endswith("raw/a.bin")
    assert result.read_bytes_at(location) == data
    assert result.read_bytes_at("raw/a.bin") == data
    assert result.exists(location) and result.exists("raw/a.bin")
    assert result.write_bytes_at("raw/a.bin", b"second") == location
    assert result.read_bytes_at(location) == b"second"


def test_bytes_written_by_write_are_what_encode_gives(make_result: Factory) -> None:
    result = make_result(location="v.pkl")
    written = result.write({"k": 1})
    assert written.location is not None
    data = result.read_bytes_at(written.location)
    assert data == result.encode({"k": 1})
    assert result.decode(data, written.location) == {"k": 1}
    again = result.write_bytes_at("copy.pkl", data)
    assert result.read(again).value == {"k": 1}


def test_reading_missing_bytes_is_a_storage_error(make_result: Factory) -> None:
    with pytest.raises(ResultStorageError):
        make_result().read_bytes_at("no/such.bin")


def test_delete_removes_and_reports_whether_something_was_there(make_result: Factory) -> None:
    result = make_result(location="d/{n}.pkl")
    location = result.write(1, n=1).location
    assert location is not None
    assert result.delete(location) is True
    assert not result.exists(location)
    assert result.delete(location) is False
    assert result.delete("never/written.pkl") is False
    with pytest.raises(ResultStorageError):
        result.read(location)


def test_list_returns_every_stored_location_recursively(make_result: Factory) -> None:
    result = make_result()
    written = {
        result.write_bytes_at(name, name.encode()): name for name in ("a/1", "a/b/2", "ab/3", "top")
    }
    assert result.list() == sorted(written)
    assert (
        result.list("a")
        == result.list("a/")
        == sorted(k for k, v in written.items() if v.startswith("a/"))
    )
    assert [written[found] for found in result.list("a/b")] == ["a/b/2"]
    assert result.list("missing") == []
    for location in result.list():
        assert result.read_bytes_at(location) == written[location].encode()
        assert result.delete(location) is True
    assert result.list() == []


def test_list_locations_read_back_values(make_result: Factory) -> None:
    result = make_result(location="values/{n}.pkl")
    for n in range(3):
        result.write(n * 10, n=n)
    assert sorted(result.read(location).value for location in result.list("values")) == [0, 10, 20]


def test_remove_stale_temporaries_is_safe_on_every_backend(make_result: Factory) -> None:
    result = make_result(location="x.pkl")
    result.write(1)
    assert result.remove_stale_temporaries() == 0
    assert len(result.list()) == 1


# -- signing ------------------------------------------------------------------------------


def test_signed_values_round_trip_and_are_refused_under_another_key(
    make_result: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(flowcore.config.results, "signing_key", "key-a")
    result = make_result(location="signed.pkl")
    location = result.write([1, 2]).location
    assert location is not None
    assert result.read_bytes_at(location).startswith(b"flowcore-hmac-sha256:")
    assert result.read(location).value == [1, 2]
    monkeypatch.setitem(flowcore.config.results, "signing_key", "key-b")
    with pytest.raises(SignatureError, match="not unpickled"):
        result.read(location)
    monkeypatch.setitem(flowcore.config.results, "signing_key", None)
    assert result.read(location).value == [1, 2]


def test_read_if_exists(make_result: Factory) -> None:
    from flowcore.exceptions import UnreadableValueError

    result = make_result()
    assert result.read_if_exists("maybe/{n}.pkl", n=1) is None
    written = result.write_at("maybe/1.pkl", {"v": 1})
    found = result.read_if_exists("maybe/{n}.pkl", n=1)
    assert found is not None and found.value == {"v": 1} and found.location == "maybe/1.pkl"
    assert result.read(written.location or "").value == {"v": 1}
    result.write_bytes_at("maybe/2.pkl", b"not a pickle")
    with pytest.raises(UnreadableValueError, match="maybe/2.pkl"):
        result.read_if_exists("maybe/{n}.pkl", n=2)
    with pytest.raises(LocationEscapeError):
        result.read_if_exists("maybe/{n}.pkl", n="../../../x")


def test_stat(make_result: Factory) -> None:
    from datetime import datetime, timedelta, timezone

    result = make_result()
    assert result.stat("nothing/here.bin") is None
    result.write_bytes_at("sized/five.bin", b"12345")
    found = result.stat("sized/five.bin")
    assert found is not None
    size, modified = found
    assert size == 5 and modified.tzinfo is not None
    assert abs(datetime.now(timezone.utc) - modified) < timedelta(minutes=10)
