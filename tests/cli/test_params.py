"""Durations and sizes as the CLI reads and prints them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowcore.cli.params import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
     ("1h30m", 5400), ("1.5h", 5400), (" 7D ", 604800), ("1d 12h", 129600), ("0s", 0)],
)  # fmt: skip
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "7x", "d", "-1d", "1h30", "7 days", "1e3s", "h1"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration: use a number and a unit"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("500", 500), ("500B", 500), ("10KB", 10_000), ("10 MB", 10_000_000), ("1GB", 10**9),
     ("2TB", 2 * 10**12), ("1KiB", 1024), ("10MiB", 10 * 2**20), ("1gib", 2**30), ("1.5KB", 1500)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "10M", "10K", "-5", "ten", "10 MBs", "1e3"])
def test_not_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size: use bytes or a number and a unit"):
        parse_size(text)


@pytest.mark.parametrize("seconds", [0, 59, 60, 61, 3599, 3600, 86399, 86400, 604800, 10**7])
def test_formatted_durations_read_back_to_at_most_the_duration(seconds: int) -> None:
    shown = format_duration(timedelta(seconds=seconds))
    back = parse_duration(shown).total_seconds()
    assert back <= seconds and (seconds - back) < max(seconds / 50, 1)


def test_sizes_print_in_the_units_they_are_typed_in() -> None:
    assert [format_size(n) for n in (None, 12, 10_000, 2_500_000, 10**9)] == [
        "-", "12 B", "10.0 KB", "2.5 MB", "1.0 GB",
    ]  # fmt: skip
