"""Durations and sizes as people type them on a command line, and back.

::

    --older-than 7d       parse_duration("7d")    -> timedelta(days=7)
    --max-age 1h30m       parse_duration("1h30m") -> timedelta(hours=1, minutes=30)
    --max-size 1GB        parse_size("1GB")       -> 1_000_000_000   (KB, MB, GB, TB: 1000-based)
    --larger-than 10MiB   parse_size("10MiB")     -> 10_485_760      (KiB, MiB, GiB, TiB: 1024-based)

``to_duration`` and ``to_size`` are the options' click callbacks; a value they cannot
read is a usage error naming the accepted forms. ``format_duration`` and ``format_size`` print
the same units, so what ``flowcore cache ls`` shows can be typed back as a filter.
"""

from __future__ import annotations

from datetime import timedelta

import click

from flowcore.utilities.units import format_duration, format_size, parse_duration, parse_size

__all__ = ["format_duration", "format_size", "parse_duration", "parse_size", "to_duration", "to_size"]


def to_duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """A click callback: the option's text as a ``timedelta`` (None when not given)."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def to_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A click callback: the option's text as a number of bytes (None when not given)."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
