"""``CacheRecord``: the one record type, a small JSON document per cached value.

A record says what was cached, for whom, until when, and where the value is::

    {
      "format": "flowcore-cache-record", "version": 1,
      "key": "fetch", "record_id": "3f1c...",          <- digest of inputs + parameters
      "task": "fetch", "flow": "etl", "flow_run_id": "8d0e...",
      "created": "2026-12-05T10:00:00+00:00", "expires": "2026-12-05T11:00:00+00:00",
      "key_parts": {"INPUTS": "a1b2...", "TASK_SOURCE": "c3d4..."},
      "inputs": {"x": "<digest>"}, "parameters": {"region": "<digest>"},
      "value": {"location": "fetch/9e8f....value", "serializer": "PickleSerializer",
                "digest": "sha256:...", "store": "/data/values"},   <- store: see below
      "message": "Task run succeeded.",
      "mac": "9f2c..."                                  <- HMAC-SHA256 hex, with a signing key
    }

Records are never pickles: reading one runs no code. ``record_id`` is a digest of the
inputs and parameters, so a rerun with the same inputs replaces its record and different
inputs add one. ``value.store`` is there only in a record kept apart from its value (a
policy's ``key_storage``): it names the value's store (its root, for people and messages;
nothing opens it), so a records store read on its own knows that a value missing beside
a record is elsewhere, not gone. With a signing key (``results.signing_key``), ``mac``
covers every other field; a record whose MAC is missing or wrong is refused like a
corrupt one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from flowcore.engine.result import signing

__all__ = ["CacheRecord", "CorruptRecord", "record_id_for"]

_FORMAT = "flowcore-cache-record"
_VERSION = 1


class CorruptRecord(ValueError):
    """A stored record cannot be used (not JSON, not ours, fields not of their types, its
    MAC does not verify, or it cannot be read); ``reason`` says why without naming it."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason

    @classmethod
    def at(cls, location: str, reason: str) -> CorruptRecord:
        """The error for the record at ``location``: 'cache record <location> <reason>'."""
        return cls(f"cache record {location!r} {reason}", reason)


def record_id_for(inputs: Mapping[str, str], parameters: Mapping[str, str]) -> str:
    """The record id of a run: 16 hex digits of its inputs' digest, then 16 of its
    parameters', so a store can find the records of given inputs by name alone.

    >>> a = record_id_for({"x": "a"}, {"p": "1"})
    >>> a == record_id_for({"x": "a"}, {"p": "1"}), a[:16] == record_id_for({"x": "a"}, {})[:16]
    (True, True)
    """
    return _digest16(inputs) + _digest16(parameters)


def inputs_part(inputs: Mapping[str, str]) -> str:
    """The part of a record id that names its inputs."""
    return _digest16(inputs)


def _digest16(digests: Mapping[str, str]) -> str:
    body = json.dumps(sorted(digests.items()), separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


@dataclass
class CacheRecord:
    """One cached value: identity, provenance, validity and where the value is."""

    key: str
    record_id: str
    task: str
    flow: str | None = None
    flow_run_id: str | None = None
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    expires: datetime | None = None
    key_parts: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] | None = None
    parameters: dict[str, str] | None = None
    value_location: str | None = None
    serializer: str | None = None
    value_digest: str | None = None
    message: str | None = None
    value_store: str | None = None

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the record's expiration has passed (None never expires)."""
        return self.expires is not None and self.expires <= (now or datetime.now(timezone.utc))

    # -- JSON --------------------------------------------------------------------------

    def to_json(self) -> bytes:
        """The stored form; signed when a signing key is configured."""
        body = asdict(self)
        body["created"] = self.created.isoformat()
        body["expires"] = None if self.expires is None else self.expires.isoformat()
        body["value"] = {
            "location": body.pop("value_location"),
            "serializer": body.pop("serializer"),
            "digest": body.pop("value_digest"),
        }
        store = body.pop("value_store")
        if store is not None:
            body["value"]["store"] = store
        document = {"format": _FORMAT, "version": _VERSION, **body}
        mac = signing.mac(_canonical(document))
        if mac is not None:
            document["mac"] = mac
        return json.dumps(document, indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, location: str) -> CacheRecord:
        """Parse a stored record; raises :class:`CorruptRecord` naming ``location``."""
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptRecord.at(location, f"is not JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise CorruptRecord.at(location, "is not a flowcore cache record")
        mac = document.pop("mac", None)
        key = signing.signing_key()
        if key is not None and (
            not isinstance(mac, str) or not signing.verify(_canonical(document), mac, key)
        ):
            raise CorruptRecord.at(
                location,
                f"has a {'wrong' if mac else 'missing'} signature (results.signing_key); "
                "it is ignored",
            )
        if document.get("version") != _VERSION:
            raise CorruptRecord.at(location, f"has unknown version {document.get('version')!r}")
        wrong = _wrong_field(document)
        if wrong is not None:
            raise CorruptRecord.at(location, f"is damaged: {wrong}")
        value = document["value"]
        try:
            created = _utc(document["created"])
            expires = None if document.get("expires") is None else _utc(document["expires"])
        except ValueError as exc:
            raise CorruptRecord.at(location, f"is damaged: {exc}") from None
        return cls(
            key=document["key"],
            record_id=document["record_id"],
            task=document["task"],
            flow=document.get("flow"),
            flow_run_id=document.get("flow_run_id"),
            created=created,
            expires=expires,
            key_parts=dict(document.get("key_parts") or {}),
            inputs=document.get("inputs"),
            parameters=document.get("parameters"),
            value_location=value.get("location"),
            serializer=value.get("serializer"),
            value_digest=value.get("digest"),
            message=document.get("message"),
            value_store=value.get("store"),
        )


def _text(found: Any) -> bool:
    return isinstance(found, str)


def _digests(found: Any) -> bool:
    return isinstance(found, dict) and all(
        isinstance(name, str) and isinstance(digest, str) for name, digest in found.items()
    )


def _location(found: Any) -> bool:
    return isinstance(found, str) and found != "" and "\0" not in found


_TEXT = (_text, "text")
_DIGESTS = (_digests, "an object of names to digests (text)")
# field -> (check, what it should be, whether null or missing is allowed)
_FIELDS: dict[str, tuple[Callable[[Any], bool], str, bool]] = {
    "key": (*_TEXT, False),
    "record_id": (*_TEXT, False),
    "task": (*_TEXT, False),
    "flow": (*_TEXT, True),
    "flow_run_id": (*_TEXT, True),
    "created": (*_TEXT, False),
    "expires": (*_TEXT, True),
    "key_parts": (*_DIGESTS, True),
    "inputs": (*_DIGESTS, True),
    "parameters": (*_DIGESTS, True),
    "message": (*_TEXT, True),
    "value.location": (_location, "a non-empty location without NUL characters", True),
    "value.serializer": (*_TEXT, True),
    "value.digest": (*_TEXT, True),
    "value.store": (*_TEXT, True),
}


def _wrong_field(document: dict[str, Any]) -> str | None:
    """What is wrong with a record's fields (a type, a missing one), or None.

    >>> _wrong_field({"key": "k", "record_id": ["x"], "task": "t", "created": "", "value": {}})
    "'record_id' is a list, expected text"
    """
    value = document.get("value")
    if not isinstance(value, dict):
        return f"'value' is {_kind(value)}, expected an object"
    for name, (valid, expected, optional) in _FIELDS.items():
        owner, _, field_name = name.rpartition(".")
        found = (value if owner else document).get(field_name)
        if found is None and optional:
            continue
        if valid(found):
            continue
        if field_name not in (value if owner else document):
            return f"{name!r} is missing, expected {expected}"
        if isinstance(found, dict):  # names to digests, one of them wrong
            bad = next((k, v) for k, v in found.items() if not (_text(k) and _text(v)))
            return f"{name!r} has {bad[0]!r}: {_kind(bad[1])}, expected text"
        return f"{name!r} is {_kind(found)}, expected {expected}"
    return None


def _kind(found: Any) -> str:
    """How a JSON value is named in messages."""
    if found is None:
        return "null"
    if isinstance(found, str):
        return f"the text {found[:40]!r}"
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(found), type(found).__name__)


def _utc(text: str) -> datetime:
    """An ISO time from a record; one written without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def value_digest(data: bytes) -> str:
    """The digest a record keeps of its stored value's bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
