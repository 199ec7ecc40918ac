"""``PrefectResult``: the "location" is the JSON text itself; nothing is stored elsewhere."""

from __future__ import annotations

from typing import Any

from flowcore.engine.result.base import Result
from flowcore.engine.serializers import DateTimeSerializer, JSONSerializer, Serializer

__all__ = ["PrefectResult"]


class PrefectResult(Result):
    """Keeps small JSON-able values (Parameters use it) in the location string.

    Only ``JSONSerializer`` (the default) and ``DateTimeSerializer`` are accepted, at
    construction and on later assignment of ``serializer``.

    >>> r = PrefectResult().write({"a": 1})
    >>> r.location, PrefectResult().read(r.location).value
    ('{"a": 1}', {'a': 1})
    """

    def stores_values(self) -> bool:
        """False: the value is kept in the location string itself, written at once in a
        transaction or not."""
        return False

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("serializer") is None:
            kwargs["serializer"] = JSONSerializer()
        super().__init__(**kwargs)

    @property
    def serializer(self) -> Serializer:
        return self._serializer

    @serializer.setter
    def serializer(self, value: Serializer) -> None:
        if not isinstance(value, (JSONSerializer, DateTimeSerializer)):
            raise TypeError(
                "PrefectResult only supports JSONSerializer or DateTimeSerializer, "
                f"got {type(value).__name__}"
            )
        self._serializer = value

    def exists(self, location: str, **kwargs: Any) -> bool:
        """Whether ``location`` is text the serializer can read back."""
        try:
            self.serializer.deserialize(location.encode())
        except Exception:
            return False
        return True

    def read(self, location: str) -> Result:
        new = self.copy()
        new.value = self.serializer.deserialize(location.encode())
        new.location = location
        return new

    def write(self, value_: Any, **kwargs: Any) -> Result:
        new = self.copy()
        new.value = value_
        new.location = self.serializer.serialize(value_).decode()
        return new
