"""Serializers: round trips, formats, custom functions, errors, equality, pickling."""

from __future__ import annotations

import base64
import bz2
import datetime
import gzip
import lzma
import pickle
import sys
import types
import zlib
from typing import Any

import cloudpickle
import pendulum
import pytest

from flowcore.engine.serializers import (
    CompressedSerializer,
    DateTimeSerializer,
    JSONSerializer,
    PandasSerializer,
    PickleSerializer,
    Serializer,
)

# -- base and simple serializers ------------------------------------------------------


def test_base_serializer_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Serializer().serialize(1)
    with pytest.raises(NotImplementedError):
        Serializer().deserialize(b"1")


def test_pickle_round_trip_including_lambdas() -> None:
    serializer = PickleSerializer()
    data = serializer.serialize({"a": [1, 2], "f": lambda x: x + 1})
    assert isinstance(data, bytes)
    value = serializer.deserialize(data)
    assert value["a"] == [1, 2] and value["f"](1) == 2


def test_pickle_reads_plain_pickles() -> None:
    assert PickleSerializer().deserialize(pickle.dumps((1, "x"))) == (1, "x")


def test_pickle_falls_back_on_base64_wrapped_pickles() -> None:
    old_format = base64.b64encode(cloudpickle.dumps({"old": True}))
    assert PickleSerializer().deserialize(old_format) == {"old": True}


def test_pickle_reraises_the_original_error_for_garbage() -> None:
    with pytest.raises(pickle.UnpicklingError):
        PickleSerializer().deserialize(b"\x80\x05garbage-not-a-pickle")


def test_json_round_trip() -> None:
    serializer = JSONSerializer()
    assert serializer.serialize({"a": [1, None]}) == b'{"a": [1, null]}'
    assert serializer.deserialize(b'{"a": [1, null]}') == {"a": [1, None]}


def test_json_rejects_non_json_values() -> None:
    with pytest.raises(TypeError):
        JSONSerializer().serialize({1, 2})


def test_datetime_round_trip_as_iso8601() -> None:
    serializer = DateTimeSerializer()
    when = pendulum.datetime(2020, 1, 2, 3, 4, 5, tz="UTC")
    assert serializer.serialize(when) == b"2020-01-02T03:04:05Z"
    assert serializer.deserialize(b"2020-01-02T03:04:05Z") == when
    plain = datetime.datetime(2021, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    back = serializer.deserialize(serializer.serialize(plain))
    assert isinstance(back, pendulum.DateTime) and back == plain


def test_equality_is_by_type() -> None:
    assert PickleSerializer() == PickleSerializer()
    assert JSONSerializer() == JSONSerializer()
    assert PickleSerializer() != JSONSerializer()
    assert JSONSerializer() != DateTimeSerializer()

    class MyJSON(JSONSerializer):
        pass

    assert MyJSON() != JSONSerializer()


@pytest.mark.parametrize("serializer", [PickleSerializer(), JSONSerializer(), DateTimeSerializer()])
def test_serializers_pickle(serializer: Serializer) -> None:
    assert pickle.loads(pickle.dumps(serializer)) == serializer
    assert cloudpickle.loads(cloudpickle.dumps(serializer)) == serializer


# -- CompressedSerializer -------------------------------------------------------------


FORMATS = {"bz2": bz2, "gzip": gzip, "lzma": lzma, "zlib": zlib}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_compressed_formats_round_trip(name: str) -> None:
    serializer = CompressedSerializer(PickleSerializer(), format=name)
    value = {"data": list(range(100))}
    data = serializer.serialize(value)
    assert FORMATS[name].decompress(data) == PickleSerializer().serialize(value)
    assert serializer.deserialize(data) == value


def test_compressed_wraps_any_serializer() -> None:
    serializer = CompressedSerializer(JSONSerializer(), format="zlib")
    assert zlib.decompress(serializer.serialize([1, 2])) == b"[1, 2]"
    assert serializer.deserialize(zlib.compress(b"[3]")) == [3]


def test_compressed_with_custom_functions_and_kwargs() -> None:
    calls: list[dict[str, Any]] = []

    def compress(data: bytes, **kwargs: Any) -> bytes:
        calls.append(kwargs)
        return zlib.compress(data, **kwargs)

    def decompress(data: bytes, **kwargs: Any) -> bytes:
        calls.append(kwargs)
        return zlib.decompress(data, **kwargs)

    serializer = CompressedSerializer(
        JSONSerializer(),
        compress=compress,
        decompress=decompress,
        compress_kwargs={"level": 9},
        decompress_kwargs={"bufsize": 1024},
    )
    assert serializer.deserialize(serializer.serialize({"k": "v"})) == {"k": "v"}
    assert calls == [{"level": 9}, {"bufsize": 1024}]


def test_compressed_format_kwargs_are_passed() -> None:
    serializer = CompressedSerializer(
        PickleSerializer(), format="gzip", compress_kwargs={"compresslevel": 1}
    )
    assert serializer.deserialize(serializer.serialize("x" * 1000)) == "x" * 1000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"format": "gzip", "compress": zlib.compress},
        {"format": "gzip", "decompress": zlib.decompress},
        {"format": "gzip", "compress": zlib.compress, "decompress": zlib.decompress},
    ],
)
def test_format_and_functions_together_is_an_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(
        ValueError, match="either `format` or `compress`/`decompress`, but not both"
    ):
        CompressedSerializer(PickleSerializer(), **kwargs)


@pytest.mark.parametrize(
    "kwargs", [{}, {"compress": zlib.compress}, {"decompress": zlib.decompress}, {"format": ""}]
)
def test_missing_format_and_functions_is_an_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(
        ValueError, match="You must specify either `format` or `compress`/`decompress`"
    ):
        CompressedSerializer(PickleSerializer(), **kwargs)


def test_unknown_format_module_is_an_import_error_naming_the_common_ones() -> None:
    with pytest.raises(ImportError, match="'no_such_compressor_xyz' is not installed") as info:
        CompressedSerializer(PickleSerializer(), format="no_such_compressor_xyz")
    assert "gzip" in str(info.value) and "zlib" in str(info.value)


def test_a_module_without_compress_functions_is_a_value_error() -> None:
    # Prefect 1.4.1's first sentence: "Given compression format 'json' module does not have
    # 'compress' and 'decompress' attributes."
    with pytest.raises(
        ValueError, match="^Given compression format 'json' module does not have 'compress'"
    ):
        CompressedSerializer(PickleSerializer(), format="json")


def test_any_importable_module_with_the_functions_is_a_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prefect 1 imports the named module; it is not limited to the four usual ones
    module = types.ModuleType("reversing_compressor")
    module.compress = lambda data: data[::-1]  # type: ignore[attr-defined]
    module.decompress = lambda data: data[::-1]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "reversing_compressor", module)
    serializer = CompressedSerializer(JSONSerializer(), format="reversing_compressor")
    assert serializer.serialize([1]) == b"]1["
    assert serializer.deserialize(b"]2[") == [2]
    assert pickle.loads(pickle.dumps(serializer)).deserialize(b"]3[") == [3]


def test_compressed_equality_compares_configuration() -> None:
    gz = CompressedSerializer(PickleSerializer(), format="gzip")
    assert gz == CompressedSerializer(PickleSerializer(), format="gzip")
    assert gz != CompressedSerializer(PickleSerializer(), format="bz2")
    assert gz != CompressedSerializer(JSONSerializer(), format="gzip")
    assert gz != CompressedSerializer(
        PickleSerializer(), format="gzip", compress_kwargs={"compresslevel": 1}
    )
    assert gz == CompressedSerializer(
        PickleSerializer(), compress=gzip.compress, decompress=gzip.decompress
    )
    assert gz != PickleSerializer()


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_compressed_pickles(dumps: Any) -> None:
    serializer = CompressedSerializer(
        JSONSerializer(), format="lzma", decompress_kwargs={"format": lzma.FORMAT_AUTO}
    )
    copy_ = pickle.loads(dumps(serializer))
    assert copy_ == serializer
    assert copy_.deserialize(serializer.serialize({"a": 1})) == {"a": 1}


def test_compressed_with_custom_lambdas_pickles_with_cloudpickle() -> None:
    serializer = CompressedSerializer(
        PickleSerializer(),
        compress=lambda data: zlib.compress(data),
        decompress=lambda data: zlib.decompress(data),
    )
    copy_ = cloudpickle.loads(cloudpickle.dumps(serializer))
    assert copy_.deserialize(serializer.serialize(5)) == 5


# -- PandasSerializer (Prefect 1.4.1's, checked against prefect 1.4.1) -------------------------


def test_pandas_serializer_round_trips_csv_and_json() -> None:
    import pandas as pd

    frame = pd.DataFrame({"one": [1, 2, 3], "two": [4, 5, 6]})
    for serializer in (
        PandasSerializer("json"),
        PandasSerializer("csv", serialize_kwargs={"index": False}),
    ):
        data = serializer.serialize(frame)
        assert isinstance(data, bytes)
        pd.testing.assert_frame_equal(serializer.deserialize(data), frame)


def test_pandas_serializer_passes_its_kwargs() -> None:
    import pandas as pd

    frame = pd.DataFrame({"one": [1, 2], "two": [3, 4]})
    written = PandasSerializer("csv", serialize_kwargs={"sep": ";", "index": False})
    assert written.serialize(frame) == b"one;two\n1;3\n2;4\n"
    read = PandasSerializer("csv", deserialize_kwargs={"sep": ";"})
    assert read.deserialize(b"a;b\n1;2\n").to_dict("list") == {"a": [1], "b": [2]}


def test_pandas_serializer_refuses_an_unknown_format_and_compares_by_settings() -> None:
    with pytest.raises(ValueError, match="blerg"):
        PandasSerializer("blerg")
    assert PandasSerializer("csv") == PandasSerializer("csv")
    assert PandasSerializer("csv") != PandasSerializer("json")
    assert PandasSerializer("csv", serialize_kwargs={"a": 1}) != PandasSerializer("csv")
    assert PandasSerializer("csv") != PickleSerializer()
