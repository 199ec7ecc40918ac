"""Signing stored values: an HMAC-SHA256 over the serialized bytes, keyed by config.

With ``results.signing_key`` set (env ``FLOWCORE__RESULTS__SIGNING_KEY``), every value a
``Result`` writes starts with a one-line header carrying the MAC of the bytes after it::

    flowcore-hmac-sha256:<64 hex digits>\\n<serialized value>

and a read refuses (before deserializing anything) bytes whose header is missing or whose
MAC does not match. Without a key, nothing is signed and a header, if present, is stripped
unverified, so turning the key off keeps signed files readable.

>>> tag = mac(b"value", b"secret")
>>> len(tag), verify(b"value", tag, b"secret"), verify(b"other", tag, b"secret")
(64, True, False)
>>> split_header(add_header(b"value", tag)) == (tag, b"value")
True
>>> split_header(b"no header")
(None, b'no header')
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping

from flowcore import configuration

__all__ = ["HEADER_PREFIX", "add_header", "mac", "signing_key", "split_header", "verify"]

HEADER_PREFIX = b"flowcore-hmac-sha256:"
_HEX_LENGTH = hashlib.sha256().digest_size * 2
_HEADER_LENGTH = len(HEADER_PREFIX) + _HEX_LENGTH + 1


class _Current(enum.Enum):
    """Default for ``key`` arguments: the key configured when the function is called."""

    KEY = "the configured key"


def signing_key() -> bytes | None:
    """The configured ``results.signing_key`` as bytes; None when unset, empty or false.

    Read from ``flowcore.config`` at every call, so a key set after import takes effect.
    Values that are not text (the environment casts ``FLOWCORE__RESULTS__SIGNING_KEY``
    as a Python literal, so ``123`` becomes an int) are used as their ``str()``.
    """
    section = configuration.config.get("results")
    value = section.get("signing_key") if isinstance(section, Mapping) else None
    if value is None or value is False or value == "" or value == b"":
        return None
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _key(key: bytes | None | _Current) -> bytes | None:
    return signing_key() if key is _Current.KEY else key


def mac(data: bytes, key: bytes | None | _Current = _Current.KEY) -> str | None:
    """The HMAC-SHA256 of ``data`` as hex, under ``key`` (default: the configured key);
    None when there is no key."""
    secret = _key(key)
    if secret is None:
        return None
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def verify(data: bytes, mac_hex: str, key: bytes | None | _Current = _Current.KEY) -> bool:
    """Whether ``mac_hex`` is the MAC of ``data`` under ``key`` (default: the configured
    key), compared in constant time. False when there is no key."""
    expected = mac(data, key)
    if expected is None:
        return False
    return hmac.compare_digest(expected.encode("ascii"), mac_hex.encode("utf-8", "replace"))


def add_header(payload: bytes, mac_hex: str) -> bytes:
    """``payload`` behind the one-line MAC header."""
    return HEADER_PREFIX + mac_hex.encode("ascii") + b"\n" + payload


def split_header(data: bytes) -> tuple[str | None, bytes]:
    """``(mac_hex, payload)`` of signed bytes; ``(None, data)`` when there is no
    well-formed header."""
    if not data.startswith(HEADER_PREFIX) or data[_HEADER_LENGTH - 1 : _HEADER_LENGTH] != b"\n":
        return None, data
    return data[len(HEADER_PREFIX) : _HEADER_LENGTH - 1].decode("latin-1"), data[_HEADER_LENGTH:]
