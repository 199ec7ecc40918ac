"""Serializers turn a value into bytes and back (Prefect 1's interface).

>>> JSONSerializer().deserialize(JSONSerializer().serialize({"a": [1, 2]}))
{'a': [1, 2]}
>>> PickleSerializer() == PickleSerializer()
True
>>> s = CompressedSerializer(PickleSerializer(), format="gzip")
>>> s.deserialize(s.serialize(list(range(3))))
[0, 1, 2]
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import pickle
from collections.abc import Callable
from typing import Any

__all__ = [
    "CompressedSerializer",
    "DateTimeSerializer",
    "JSONSerializer",
    "PandasSerializer",
    "PickleSerializer",
    "Serializer",
]

_COMPRESSION_MODULES = ("bz2", "gzip", "lzma", "zlib")


class Serializer:
    """Base class: ``serialize(value) -> bytes`` and ``deserialize(bytes) -> value``."""

    def serialize(self, value: Any) -> bytes:
        raise NotImplementedError(f"{type(self).__name__} must implement serialize()")

    def deserialize(self, value: bytes) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement deserialize()")

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PickleSerializer(Serializer):
    """cloudpickle; reads plain pickles and base64-wrapped pickles (old Prefect format)."""

    def serialize(self, value: Any) -> bytes:
        import cloudpickle

        return cloudpickle.dumps(value)  # type: ignore[no-any-return]

    def deserialize(self, value: bytes) -> Any:
        try:
            return pickle.loads(value)
        except Exception as exc:
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise exc from None
            return pickle.loads(decoded)


class JSONSerializer(Serializer):
    """``json.dumps`` / ``json.loads`` over UTF-8."""

    def serialize(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def deserialize(self, value: bytes) -> Any:
        return json.loads(value)


class DateTimeSerializer(Serializer):
    """A pendulum ISO-8601 string."""

    def serialize(self, value: Any) -> bytes:
        import pendulum

        text: str = pendulum.instance(value).to_iso8601_string()
        return text.encode()

    def deserialize(self, value: bytes) -> Any:
        import pendulum

        return pendulum.parse(value.decode())


class PandasSerializer(Serializer):
    """A pandas ``DataFrame`` as a file of ``file_type`` (``"csv"``, ``"json"``,
    ``"parquet"``...: any format with ``DataFrame.to_<type>`` and ``pandas.read_<type>``).

    Args:
        file_type: the format.
        deserialize_kwargs: extra keyword arguments for ``pandas.read_<type>``.
        serialize_kwargs: extra keyword arguments for ``DataFrame.to_<type>``.

    Raises:
        ImportError: pandas is not installed.
        ValueError: pandas cannot read or write ``file_type``.
    """

    def __init__(
        self,
        file_type: str,
        deserialize_kwargs: dict[str, Any] | None = None,
        serialize_kwargs: dict[str, Any] | None = None,
    ) -> None:
        pandas = _pandas()
        self.file_type = file_type
        if not hasattr(pandas, f"read_{file_type}") or not hasattr(
            pandas.DataFrame, f"to_{file_type}"
        ):
            raise ValueError(
                f"Could not find deserialization methods for {file_type}: pandas has no "
                f"read_{file_type} or DataFrame.to_{file_type}; use e.g. 'csv', 'json' or "
                "'parquet'"
            )
        self.deserialize_kwargs = deserialize_kwargs or {}
        self.serialize_kwargs = serialize_kwargs or {}

    def serialize(self, value: Any) -> bytes:
        import io

        buffer = io.BytesIO()
        try:
            getattr(value, f"to_{self.file_type}")(buffer, **self.serialize_kwargs)
        except TypeError:  # writers of text formats (csv, json...) want a text stream
            text = io.StringIO()
            getattr(value, f"to_{self.file_type}")(text, **self.serialize_kwargs)
            return text.getvalue().encode()
        return buffer.getvalue()

    def deserialize(self, value: bytes) -> Any:
        import io

        reader = getattr(_pandas(), f"read_{self.file_type}")
        return reader(io.BytesIO(value), **self.deserialize_kwargs)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.file_type == other.file_type
            and self.serialize_kwargs == other.serialize_kwargs
            and self.deserialize_kwargs == other.deserialize_kwargs
        )

    def __hash__(self) -> int:
        return hash((type(self), self.file_type))

    def __repr__(self) -> str:
        return f"PandasSerializer({self.file_type!r})"


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            "PandasSerializer needs pandas, which is not installed: pip install pandas"
        ) from exc
    return pandas


class CompressedSerializer(Serializer):
    """Wrap another serializer with compression.

    Args:
        serializer: the serializer whose bytes are compressed.
        format: the name of a module with ``compress`` and ``decompress`` functions
            (usually ``bz2``, ``gzip``, ``lzma`` or ``zlib``).
        compress / decompress: custom functions, given together instead of ``format``.
        compress_kwargs / decompress_kwargs: extra keyword arguments for those functions.
    """

    def __init__(
        self,
        serializer: Serializer,
        format: str | None = None,
        compress: Callable[..., bytes] | None = None,
        decompress: Callable[..., bytes] | None = None,
        compress_kwargs: dict[str, Any] | None = None,
        decompress_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.serializer = serializer
        self.format = format or None
        if format and (compress is not None or decompress is not None):
            raise ValueError(
                "You must specify either `format` or `compress`/`decompress`, but not both."
            )
        if format:
            compress, decompress = _compression_from_module(format)
        elif compress is None or decompress is None:
            raise ValueError("You must specify either `format` or `compress`/`decompress`.")
        self._compress = compress
        self._decompress = decompress
        self.compress_kwargs = compress_kwargs or {}
        self.decompress_kwargs = decompress_kwargs or {}

    def serialize(self, value: Any) -> bytes:
        return self._compress(self.serializer.serialize(value), **self.compress_kwargs)

    def deserialize(self, value: bytes) -> Any:
        return self.serializer.deserialize(self._decompress(value, **self.decompress_kwargs))

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.serializer == other.serializer
            and self._compress == other._compress
            and self._decompress == other._decompress
            and self.compress_kwargs == other.compress_kwargs
            and self.decompress_kwargs == other.decompress_kwargs
        )

    def __hash__(self) -> int:
        return hash((type(self), self.serializer))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.format is not None:
            state.pop("_compress")
            state.pop("_decompress")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.format is not None:
            self._compress, self._decompress = _compression_from_module(self.format)


def _compression_from_module(name: str) -> tuple[Callable[..., bytes], Callable[..., bytes]]:
    others = ", ".join(m for m in _COMPRESSION_MODULES if m != name)
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"Compression module for {name!r} is not installed; did you mean one of {others}?"
        ) from exc
    try:
        return module.compress, module.decompress
    except AttributeError:
        raise ValueError(
            f"Given compression format {name!r} module does not have 'compress' and "
            f"'decompress' attributes. Pass compress= and decompress= yourself, or use one "
            f"of {others}"
        ) from None
