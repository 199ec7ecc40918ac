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
                "digest": "sha256:..."},
      "message": "Task run succeeded.",
      "mac": "9f2c..."                                  <- HMAC-SHA256 hex, with a signing key
    }

Records are never pickles: reading one runs no code. ``record_id`` is a digest of the
inputs and parameters, so a rerun with the same inputs replaces its record and different
inputs add one. With a signing key (``results.signing_key``), ``mac`` covers every other
field; a record whose MAC is missing or wrong is refused like a corrupt one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from flowcore.engine.result import signing

__all__ = ["CacheRecord", "CorruptRecord", "record_id_for"]

_FORMAT = "flowcore-cache-record"
_VERSION = 1


class CorruptRecord(ValueError):
    """A stored record cannot be used (not JSON, not ours, or its MAC does not verify)."""


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
            raise CorruptRecord(f"cache record {location!r} is not JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise CorruptRecord(f"{location!r} is not a flowcore cache record")
        mac = document.pop("mac", None)
        key = signing.signing_key()
        if key is not None and (
            not isinstance(mac, str) or not signing.verify(_canonical(document), mac, key)
        ):
            raise CorruptRecord(
                f"cache record {location!r} has a {'wrong' if mac else 'missing'} signature "
                "(results.signing_key); it is ignored"
            )
        if document.get("version") != _VERSION:
            raise CorruptRecord(
                f"cache record {location!r} has unknown version {document.get('version')!r}"
            )
        try:
            value = document["value"]
            return cls(
                key=document["key"],
                record_id=document["record_id"],
                task=document["task"],
                flow=document.get("flow"),
                flow_run_id=document.get("flow_run_id"),
                created=_utc(document["created"]),
                expires=None if document.get("expires") is None else _utc(document["expires"]),
                key_parts=dict(document.get("key_parts") or {}),
                inputs=document.get("inputs"),
                parameters=document.get("parameters"),
                value_location=value.get("location"),
                serializer=value.get("serializer"),
                value_digest=value.get("digest"),
                message=document.get("message"),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CorruptRecord(f"cache record {location!r} is incomplete ({exc!r})") from None


def _utc(text: str) -> datetime:
    """An ISO time from a record; one written without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def value_digest(data: bytes) -> str:
    """The digest a record keeps of its stored value's bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
