"""The ``flowcore`` command line (also ``python -m flowcore``).

::

    flowcore [--debug] [--version] NOUN VERB [OPTIONS]
      cache ls | show | rm | gc | explain  flowcore.cli.cache
      run FILE.py[:FLOW], resume RUN_ID  flowcore.cli.run
      runs ls | show | logs             flowcore.cli.runs
      visualize FILE.py[:FLOW]          flowcore.cli.visualize
      ui                                flowcore.cli.ui

Groups mirror the nouns, commands the verbs; a new verb is one function in its noun's
module, and a new noun one line in ``_COMMANDS`` (commands are imported when used). Every listing takes ``--json`` (one JSON document on stdout, for scripts) and
otherwise prints a table (rich, for people).

:func:`main` is the one place where errors become output: any error, ours
(:class:`CliError`), click's (a bad option or value) or one raised by the code a command
calls (a storage error, a missing extra), is printed as one line on stderr, ``Error: ...``,
saying what to do, and the exit status is 1. ``--debug`` shows the traceback of an
unexpected error instead. Success is exit status 0. A group given no command (``flowcore``,
``flowcore runs``) prints its help, as ``--help`` does, with exit status 0.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

import flowcore

__all__ = ["CliError", "Settings", "cli", "main"]


class CliError(click.ClickException):
    """A failure of what was asked, with its fix in the message (printed as one line)."""


@dataclass
class Settings:
    """The global options (``ctx.obj``); :func:`main` reads ``debug`` after a failure."""

    debug: bool = False


class _LazyGroup(click.Group):
    """A group whose commands are imported when used (click's documented pattern for lazy
    subcommands), so ``flowcore runs ls`` does not import the caching package, nor
    ``flowcore cache ls`` the run store. ``--help`` imports them all, for their help."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, _, attribute = self.lazy[name].rpartition(".")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)


# command name -> where it is defined; a new verb is one line here and one function there
_COMMANDS = {
    "cache": "flowcore.cli.cache.cache",
    "resume": "flowcore.cli.run.resume",
    "run": "flowcore.cli.run.run",
    "runs": "flowcore.cli.runs.runs",
    "ui": "flowcore.cli.ui.ui",
    "visualize": "flowcore.cli.visualize.visualize",
}


@click.group(
    cls=_LazyGroup, lazy=_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
@click.version_option(
    flowcore.__version__, "--version", prog_name="flowcore", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """flowcore: run flows, and manage what they leave behind."""
    ctx.ensure_object(Settings).debug = debug


# what click (8.2 on) raises for a group given no command; click 8.1 prints the help itself
_NO_COMMAND: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(args: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Run the command line and exit: 0 on success, 1 on any failure."""
    settings = Settings()
    try:
        status = cli.main(args, prog_name, standalone_mode=False, obj=settings)
    except click.Abort:
        click.echo("Aborted.", err=True)
        status = 1
    except _NO_COMMAND as exc:  # `flowcore`, `flowcore runs`: as --help
        click.echo(exc.ctx.get_help())
        status = 0
    except click.ClickException as exc:
        click.echo(f"Error: {_one_line(_message(exc))}", err=True)
        status = 1
    except BrokenPipeError:  # the reader went away (`flowcore cache ls | head`)
        _silence_stdout()
        status = 1
    except Exception as exc:
        if settings.debug:
            raise
        click.echo(f"Error: {_one_line(_unexpected(exc))}", err=True)
        status = 1
    sys.exit(status if isinstance(status, int) else 0)


def _message(exc: click.ClickException) -> str:
    message = exc.format_message()
    if isinstance(exc, click.UsageError) and (
        not isinstance(exc, click.BadParameter) or isinstance(exc, click.MissingParameter)
    ):  # a bad value's message says what to write instead; other usage errors point to --help
        path = exc.ctx.command_path if exc.ctx is not None else "flowcore"
        message += f" (see '{path} --help')"
    return message


def _unexpected(exc: Exception) -> str:
    from flowcore.exceptions import FlowcoreException

    if isinstance(exc, FlowcoreException):
        return str(exc)  # flowcore's own errors already name the object and the fix
    return f"{type(exc).__name__}: {exc} (flowcore --debug ... shows the traceback)"


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
