"""Durations and sizes as people write them (``7d``, ``1h30m``, ``10MB``), and back.

::

    parse_duration("7d")    -> timedelta(days=7)          90s, 15m, 12h, 7d, 2w, 1h30m
    parse_size("1GB")       -> 1_000_000_000              KB, MB, GB, TB: 1000-based
    parse_size("10MiB")     -> 10_485_760                 KiB, MiB, GiB, TiB: 1024-based

``format_duration`` and ``format_size`` print the same units, so what is shown can be
typed back. Used by the ``flowcore`` command's options and by config ``caching.gc.*``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = [
    "format_duration",
    "format_seconds",
    "format_size",
    "format_time",
    "parse_duration",
    "parse_size",
]

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION_HINT = "use a number and a unit, e.g. 90s, 15m, 12h, 7d, 2w (or 1h30m)"

_SIZE_UNITS = {
    "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_SIZE_HINT = (
    "use bytes or a number and a unit, e.g. 500, 10KB, 10MB, 1GB (KiB, MiB, GiB: 1024-based)"
)


def parse_duration(text: str) -> timedelta:
    """A duration such as ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` or ``1h30m``.

    >>> parse_duration("7d"), parse_duration("1h30m"), parse_duration("1.5h")
    (datetime.timedelta(days=7), datetime.timedelta(seconds=5400), datetime.timedelta(seconds=5400))
    >>> parse_duration("7")
    Traceback (most recent call last):
    ...
    ValueError: '7' is not a duration: use a number and a unit, e.g. 90s, 15m, 12h, 7d, 2w (or 1h30m)
    """
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration: {_DURATION_HINT}")
    return timedelta(seconds=sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts))


def parse_size(text: str) -> int:
    """A size in bytes: ``500``, ``10KB``, ``10MB``, ``1GB`` (1000-based) or ``10KiB``,
    ``10MiB``, ``1GiB`` (1024-based); units in any case.

    >>> parse_size("500"), parse_size("10KB"), parse_size("1.5mb"), parse_size("2MiB")
    (500, 10000, 1500000, 2097152)
    >>> parse_size("10M")
    Traceback (most recent call last):
    ...
    ValueError: '10M' is not a size: use bytes or a number and a unit, e.g. 500, 10KB, 10MB, 1GB (KiB, MiB, GiB: 1024-based)
    """
    found = _SIZE.fullmatch(text.strip().lower())
    if found is None or (found.group(2) or "b") not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size: {_SIZE_HINT}")
    return int(float(found.group(1)) * _SIZE_UNITS[found.group(2) or "b"])


def format_duration(delta: timedelta) -> str:
    """``delta`` in at most two units, the way ``parse_duration`` reads them.

    >>> [format_duration(timedelta(seconds=s)) for s in (0, 42, 90, 5400, 86400 * 3 + 7200)]
    ['0s', '42s', '1m30s', '1h30m', '3d2h']
    >>> format_duration(timedelta(days=15, minutes=5)), parse_duration("15d")
    ('15d', datetime.timedelta(days=15))
    """
    remaining = max(int(delta.total_seconds()), 0)
    parts: list[tuple[int, str]] = []
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):  # no weeks: 9d, not 1w2d
        count, remaining = divmod(remaining, seconds)
        if count or parts:
            parts.append((count, unit))
        if len(parts) == 2:
            break
    shown = "".join(f"{count}{unit}" for count, unit in parts if count)
    return shown or "0s"


def format_size(size: int | None) -> str:
    """``size`` bytes in 1000-based units ("-" when unknown).

    >>> [format_size(n) for n in (None, 0, 999, 1000, 1536, 12_345_678, 3 * 10**9)]
    ['-', '0 B', '999 B', '1.0 KB', '1.5 KB', '12.3 MB', '3.0 GB']
    """
    if size is None:
        return "-"
    for unit in ("TB", "GB", "MB", "KB"):
        if size >= _SIZE_UNITS[unit.lower()]:
            return f"{size / _SIZE_UNITS[unit.lower()]:.1f} {unit}"
    return f"{size} B"


def format_time(value: str | datetime | None) -> str:
    """An ISO time (or datetime) as ``YYYY-MM-DD HH:MM:SS`` UTC; ``-`` for None.

    >>> format_time("2026-12-05T07:08:09.123456+00:00"), format_time(None)
    ('2026-12-05 07:08:09', '-')
    """
    if value is None:
        return "-"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``0.25s`` -> ``250ms``, ``3.2s``, ``1m30s``; ``-`` for None.

    >>> [format_seconds(s) for s in (None, 0.25, 3.21, 90, 5400)]
    ['-', '250ms', '3.2s', '1m30s', '1h30m']
    """
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_duration(timedelta(seconds=seconds))
