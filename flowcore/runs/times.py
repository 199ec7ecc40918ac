"""Values as the run store's SQL holds them: times, and id lists cut for ``IN (...)``.

SQLite has no time zones: a time is stored as naive UTC text of fixed width
(``2026-01-02 03:04:05.000000``, the format SQLAlchemy's own SQLite ``DATETIME`` writes),
so text order is time order. PostgreSQL stores ``timestamptz``. The writes of
:mod:`flowcore.runs.writes` and the reads of :mod:`flowcore.runs.queries` (SQL text) go
through these functions, so every backend gets the same text and hands back aware UTC
datetimes. Events carry their times as epoch seconds (cheap to take on the hot path):
:func:`from_epoch` turns them into datetimes.

Reads and writes that name many runs at once (``run_id IN (...)``) cut the ids into
:func:`chunks` of :data:`CHUNK`, well under SQLite's smallest limit of bound parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

__all__ = [
    "CHUNK",
    "aware",
    "chunks",
    "epoch_param",
    "from_epoch",
    "sqlite_time",
    "stored_time",
    "time_param",
    "utc_time",
]

T = TypeVar("T")

CHUNK = 500  # values per IN (...) list


def sqlite_time(value: datetime) -> str:
    """A time as the SQLite column holds it: naive UTC, fixed width (naive input is UTC).

    >>> sqlite_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    '2026-01-02 03:04:05.000000'
    """
    if value.tzinfo is not timezone.utc:
        value = aware(value).astimezone(timezone.utc)
    return value.isoformat(" ", "microseconds")[:26]


def aware(value: datetime) -> datetime:
    """``value`` with a time zone (a naive time is UTC).

    >>> aware(datetime(2026, 1, 2)).tzinfo
    datetime.timezone.utc
    """
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def time_param(dialect: str) -> Callable[[datetime], Any]:
    """How a time goes into a statement's parameters on the SQL ``dialect`` (its
    SQLAlchemy name): SQLite's text, else an aware datetime.

    >>> time_param("sqlite")(datetime(2026, 1, 2)), time_param("postgresql")(datetime(2026, 1, 2))
    ('2026-01-02 00:00:00.000000', datetime.datetime(2026, 1, 2, 0, 0, tzinfo=datetime.timezone.utc))
    """
    return sqlite_time if dialect == "sqlite" else aware


def utc_time(value: Any) -> datetime | None:
    """A time read from a column (SQLite's text, or a driver's datetime), aware and UTC.

    >>> utc_time("2026-01-02 03:04:05.000000")
    datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)  # type: ignore[no-any-return]
    return value.astimezone(timezone.utc)  # type: ignore[no-any-return]


def stored_time(value: Any) -> datetime:
    """:func:`utc_time` of a column that is never NULL."""
    time = utc_time(value)
    if time is None:
        raise ValueError("a NOT NULL time column of the run store held NULL")
    return time


def from_epoch(seconds: float) -> datetime:
    """An event's time (epoch seconds) as an aware UTC datetime.

    >>> from_epoch(0)
    datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    return datetime.fromtimestamp(seconds, timezone.utc)


def epoch_param(dialect: str) -> Callable[[float], Any]:
    """How an event's time (epoch seconds) goes into a statement's parameters on the SQL
    ``dialect``: ``time_param(dialect)(from_epoch(seconds))``, the same value, made
    quicker for the many rows of a fold on SQLite. The text of each whole second is made
    once (a fold's times fall in few seconds); the microseconds are rounded as
    ``datetime.fromtimestamp`` rounds them (half to even, a carry into the next second).

    >>> epoch_param("sqlite")(1767322800.25), epoch_param("postgresql")(0.5)
    ('2026-01-02 03:00:00.250000', datetime.datetime(1970, 1, 1, 0, 0, 0, 500000, tzinfo=datetime.timezone.utc))
    """
    if dialect != "sqlite":
        return from_epoch
    seconds_text: dict[float, str] = {}

    def stored(seconds: float) -> str:
        fraction, whole = math.modf(seconds)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            whole, micros = whole + 1, micros - 1_000_000
        elif micros < 0:
            whole, micros = whole - 1, micros + 1_000_000
        text = seconds_text.get(whole)
        if text is None:
            text = seconds_text[whole] = sqlite_time(from_epoch(whole))[:19]
        return f"{text}.{micros:06d}"

    return stored


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``values`` in consecutive slices of at most ``size``.

    >>> [list(c) for c in chunks([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(values), size):
        yield values[start : start + size]
