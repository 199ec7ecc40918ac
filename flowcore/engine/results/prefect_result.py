"""``PrefectResult``: the "location" is the JSON text itself; nothing is stored elsewhere."""

from __future__ import annotations

import json
from typing import Any

from flowcore.engine.result.base import Result
from flowcore.engine.serializers import DateTimeSerializer, JSONSerializer, Serializer

__all__ = ["PrefectResult"]


class PrefectResult(Result):
    """Keeps small JSON-able values (Parameters use it) in the location string.

    >>> r = PrefectResult().write({"a": 1})
    >>> r.location, PrefectResult().read(r.location).value
    ('{"a": 1}', {'a': 1})
    """

    def __init__(self, serializer: Serializer | None = None, **kwargs: Any) -> None:
        serializer = serializer if serializer is not None else JSONSerializer()
        if not isinstance(serializer, (JSONSerializer, DateTimeSerializer)):
            raise TypeError(
                "PrefectResult only supports JSONSerializer or DateTimeSerializer, "
                f"got {type(serializer).__name__}"
            )
        super().__init__(serializer=serializer, **kwargs)

    def exists(self, location: str, **kwargs: Any) -> bool:
        try:
            json.loads(location)
        except (TypeError, ValueError):
            return False
        return True

    def read(self, location: str) -> Result:
        new = self.copy()
        new.location = location
        new.value = self.serializer.deserialize(location.encode())
        return new

    def write(self, value_: Any, **kwargs: Any) -> Result:
        new = self.copy()
        new.value = value_
        new.location = self.serializer.serialize(value_).decode()
        return new
