"""Times in the run store: aware UTC datetimes, kept as fixed-width text on SQLite.

SQLite has no time zones: a time is stored as naive UTC text of fixed width
(``2026-01-02 03:04:05.000000``, the format SQLAlchemy's own SQLite ``DATETIME`` writes),
so text order is time order. PostgreSQL stores ``timestamptz``. Both the schema's column
type (:class:`flowcore.runs.schema.UTCDateTime`) and the reads of
:mod:`flowcore.runs.queries` go through these two functions, so every backend hands back
aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["sqlite_time", "utc_time"]


def sqlite_time(value: datetime) -> str:
    """A time as the SQLite column holds it: naive UTC, fixed width (naive input is UTC).

    >>> sqlite_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    '2026-01-02 03:04:05.000000'
    """
    if value.tzinfo is not timezone.utc:
        value = (
            value.replace(tzinfo=timezone.utc)
            if value.tzinfo is None
            else value.astimezone(timezone.utc)
        )
    return value.isoformat(" ", "microseconds")[:26]


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
