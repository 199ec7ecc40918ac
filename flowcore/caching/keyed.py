"""Storage for policy-keyed caching: one value and one record per computed key.

The value is stored at ``<key>`` in the task's result storage (file name = the key); the
record (expiration, who wrote it, where the value is) at ``<key>.record`` beside it, or at
``<key>`` in a separate ``key_storage``, so records can be deleted without touching the
values.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from flowcore import configuration
from flowcore.engine.result import Result
from flowcore.engine.serializers import PickleSerializer

__all__ = ["KeyRecord", "KeyedStorage", "default_storage"]


class KeyRecord:
    """A cache record: where the value is and until when it may be used."""

    __slots__ = ("key", "value_location", "expiration", "flow_run_id", "created")

    def __init__(self, key: str, value_location: str, expiration: datetime | None, flow_run_id: str | None, created: datetime) -> None:
        self.key = key
        self.value_location = value_location
        self.expiration = expiration
        self.flow_run_id = flow_run_id
        self.created = created

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, state.get(name))

    def expired(self, now: datetime | None = None) -> bool:
        return self.expiration is not None and self.expiration <= (now or datetime.now(timezone.utc))


_DEFAULTS: dict[str, Result] = {}


def default_storage(config: Any = None) -> Result:
    """``LocalResult`` under ``<home_dir>/storage`` (one per home dir and process).

    ``config`` is the run's config (from the run context, which travels to Dask workers);
    default: this process's ``flowcore.config``.
    """
    from flowcore.engine.results import LocalResult

    config = config if config is not None else configuration.config
    directory = os.path.join(os.path.expanduser(str(config["home_dir"])), "storage")
    found = _DEFAULTS.get(directory)
    if found is None:
        found = _DEFAULTS[directory] = LocalResult(dir=directory)
    return found


def _as_result(storage: Any) -> Result | None:
    if storage is None or isinstance(storage, Result):
        return storage
    if isinstance(storage, (str, os.PathLike)):
        from flowcore.engine.results import LocalResult

        return LocalResult(dir=storage)
    raise TypeError(f"key_storage must be a directory or a Result, got {type(storage).__name__}")


class KeyedStorage:
    """Values in ``result``; records in ``key_storage`` (a directory or Result) or beside them."""

    def __init__(self, result: Result, key_storage: Any = None) -> None:
        self.result = result
        records = _as_result(key_storage)
        self.separate_records = records is not None
        self.records = (records or result).copy()
        self.records.serializer = PickleSerializer()

    def __repr__(self) -> str:
        return f"KeyedStorage(values={self.result!r}, records={self.records!r})"

    def _record_location(self, key: str) -> str:
        return key if self.separate_records else f"{key}.record"

    def read_record(self, key: str) -> KeyRecord | None:
        """The record of ``key``, None if there is none (raises if it cannot be read)."""
        location = self._record_location(key)
        if not self.records.exists(location):
            return None
        record = self.records.read(location).value
        if not isinstance(record, KeyRecord):
            raise ValueError(f"{location!r} does not hold a flowcore cache record")
        return record

    def read_value(self, record: KeyRecord) -> Result:
        return self.result.read(record.value_location)

    def write(self, key: str, value: Any, expiration: datetime | None, flow_run_id: str | None) -> Result:
        """Write the value, then its record (so a record never points at nothing)."""
        stored = self.result.write_at(key, value)
        record = KeyRecord(key, stored.location or key, expiration, flow_run_id, datetime.now(timezone.utc))
        self.records.write_at(self._record_location(key), record)
        return stored
