"""Parameters, durations and sizes as people type them on a command line, and back.

::

    --param n=3           parse_params(["n=3"])   -> {"n": 3}         (VALUE in JSON, else text)
    --param day=2026-12-05                        -> {"day": "2026-12-05"}

    --older-than 7d       parse_duration("7d")    -> timedelta(days=7)
    --max-age 1h30m       parse_duration("1h30m") -> timedelta(hours=1, minutes=30)
    --max-size 1GB        parse_size("1GB")       -> 1_000_000_000   (KB, MB, GB, TB: 1000-based)
    --larger-than 10MiB   parse_size("10MiB")     -> 10_485_760      (KiB, MiB, GiB, TiB: 1024-based)

``checked_params(flow, params)`` checks them against the flow's Parameters.
``to_params``, ``to_duration`` and ``to_size`` are the options' click callbacks; a value they cannot
read is a usage error naming the accepted forms. ``format_duration`` and ``format_size`` print
the same units, so what ``flowcore cache ls`` shows can be typed back as a filter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import click

from flowcore.cli import CliError
from flowcore.utilities.units import format_duration, format_size, parse_duration, parse_size

__all__ = [
    "checked_params",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_params",
    "parse_size",
    "to_duration",
    "to_params",
    "to_size",
]


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as a dict; a VALUE that is JSON is read as JSON, else it is text.

    >>> parse_params(["n=3", "day=2026-12-05", 'names=["a", "b"]', "empty="])
    {'n': 3, 'day': '2026-12-05', 'names': ['a', 'b'], 'empty': ''}
    """
    found: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{pair!r} is not NAME=VALUE (VALUE in JSON, or plain text)")
        try:
            found[name.strip()] = json.loads(text)
        except ValueError:
            found[name.strip()] = text
    return found


def to_params(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, Any]:
    """A click callback: the repeated option's ``NAME=VALUE`` pairs as a dict."""
    try:
        return parse_params(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


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


def checked_params(flow: Any, given: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """``given`` (``--param`` values), once every name is a Parameter of ``flow`` and (with
    ``required``) every required Parameter has a value; else a CliError saying which and
    the fix. A resumed run leaves ``required`` out: it takes the recorded values."""
    names = {p.name: p for p in flow.parameters()}
    unknown = [name for name in given if name not in names]
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise CliError(
            f"Flow {flow.name!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(its parameters: {known}): fix the --param name"
        )
    missing = sorted(n for n, p in names.items() if p.required and n not in given)
    if missing and required:
        raise CliError(
            f"Flow {flow.name!r} needs parameter {', '.join(map(repr, missing))}: give it with "
            + " ".join(f"--param {name}=VALUE" for name in missing)
        )
    return given
