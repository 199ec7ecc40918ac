"""What the CLI prints: JSON for scripts, rich tables for people.

Every listing goes through :func:`echo_json` (``--json``: one JSON document on stdout,
nothing else) or :func:`echo_table`. rich is imported on first use, so ``flowcore --help``
does not pay for it. Text is printed as it is (no rich markup or emoji codes: a flow may be
named ``[bold]x``). When stdout is not a terminal, tables are as wide as their content
(never folded to 80 columns), so a piped listing keeps whole keys on one line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "echo_json", "echo_table", "one_line"]

# control characters as Python writes them in a str's repr: a row of a table stays one line
_ESCAPES = {
    code: repr(chr(code))[1:-1] for code in [*range(32), 127]
}  # fmt: skip


def echo_json(data: Any) -> None:
    """``data`` as indented JSON on stdout; times in ISO 8601 (``2026-12-05T10:00:00+00:00``)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, (datetime, date)) else str(value)


def console(err: bool = False) -> Console:
    """A rich console on stdout (stderr with ``err``); unbounded width when it is not a
    terminal."""
    from rich.console import Console

    width = None if (sys.stderr if err else sys.stdout).isatty() else 100_000
    return Console(
        stderr=err, width=width, highlight=False, markup=False, emoji=False, soft_wrap=False
    )


def one_line(text: str) -> str:
    r"""``text`` with its control characters escaped, as in a str's repr.

    >>> print(one_line("tab\tnl\nx"))
    tab\tnl\nx
    """
    return text.translate(_ESCAPES)


def echo_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    caption: str | None = None,
    right: Sequence[str] = (),
    err: bool = False,
) -> None:
    """A table with a header row, then ``caption``; ``right``: the columns aligned right
    (numbers); ``err``: on stderr. Each row is one line: control characters in a cell
    (a task named with a newline) are escaped (:func:`one_line`)."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in columns:
        table.add_column(
            column, justify="right" if column in right else "left", no_wrap=column == "key"
        )
    for row in rows:
        table.add_row(*map(one_line, row))
    out = console(err)
    out.print(table)
    if caption:
        out.print(caption)
