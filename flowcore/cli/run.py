"""``flowcore run`` and ``flowcore resume``: run a flow from a file, as a recorded run.

::

    flowcore run FILE.py[:FLOW] [--param k=v ...] [--executor local|threads|processes|dask|
                 dask://HOST:PORT] [--resume RUN_ID|last] [--rerun TASK ...] [--progress/--no-progress]
    flowcore resume RUN_ID|last [--param k=v ...] [--executor ...]

A run started here is like one started by Prefect 1's agent: checkpointing is on, so the
values of tasks that have a ``result`` (their own, or the flow's) are written, and the run
can be resumed from any process. (No result is made up for a flow without one: that would
also move where its cache policies keep their values.) ``resume`` loads the flow from the
file the run recorded and runs it again through ``flow.run(resume=RUN_ID)``, which takes
the run's parameters (``--param`` overrides them), as ``run --resume`` does. The exit status is 0 when the run succeeds, 1
otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from flowcore.cli import CliError
from flowcore.cli.loading import load_flow
from flowcore.cli.params import checked_params, to_params

__all__ = ["resume", "run"]

_EXECUTORS = "local, threads, processes, dask or dask://HOST:PORT"
_Command = TypeVar("_Command", bound=Callable[..., Any])


def _param_option(text: str) -> Callable[[_Command], _Command]:
    return click.option(
        "--param", "-p", "params", multiple=True, metavar="NAME=VALUE", callback=to_params,
        help=text,
    )  # fmt: skip


_executor_option = click.option(
    "--executor", "-e", default="local", show_default=True, help=f"One of {_EXECUTORS}."
)
_progress_option = click.option(
    "--progress/--no-progress", default=None,
    help="A live display of task progress (default: when stderr is a terminal).",
)  # fmt: skip


def _rerun_option(text: str) -> Callable[[_Command], _Command]:
    return click.option("--rerun", multiple=True, metavar="TASK", help=text)


@click.command("run")
@click.argument("flow_file", metavar="FILE.py[:FLOW]")
@_param_option("A parameter value (JSON, else text); repeat for more.")
@_executor_option
@click.option(
    "--resume",
    "resume_from",
    metavar="RUN_ID|last",
    help="Resume that run: finished tasks are not run again.",
)
@_rerun_option("With --resume: run this task (by name or slug) and everything downstream again.")
@_progress_option
def run(
    flow_file: str,
    params: dict[str, Any],
    executor: str,
    resume_from: str | None,
    rerun: tuple[str, ...],
    progress: bool | None,
) -> None:
    """Run the flow FLOW defined in FILE.py (FLOW: a variable or flow name; optional when
    the file defines one flow)."""
    _run_recorded(flow_file, params, executor, resume_from, rerun, progress)


@click.command("resume")
@click.argument("run_id", metavar="RUN_ID|last")
@_param_option("Override a parameter of the resumed run.")
@_executor_option
@_rerun_option("Run this task (by name or slug) and everything downstream again.")
@_progress_option
def resume(
    run_id: str,
    params: dict[str, Any],
    executor: str,
    rerun: tuple[str, ...],
    progress: bool | None,
) -> None:
    """Resume run RUN_ID (`last`: the newest run that failed or did not finish): run only
    what did not finish, with the flow loaded from the file the run came from (`flowcore
    runs ls` lists the runs)."""
    from flowcore.cli.runs import find_run, open_cli_store

    store = open_cli_store(None)
    found = find_run(store, run_id, resumable=True)
    if not found.source:
        raise CliError(
            f"Run {found.run_id} did not record the file its flow came from; resume it from "
            f"Python with flow.run(resume={found.run_id!r}), or `flowcore run FILE.py --resume {found.run_id}`"
        )
    _check_source(found.run_id, found.source)
    _run_recorded(found.source, params, executor, found.run_id, rerun, progress)


def _check_source(run_id: str, source: str) -> None:
    path = Path(source.rpartition(":")[0] or source)
    if not path.is_file():
        raise CliError(
            f"Run {run_id} came from {path}, which is not there any more: resume it with the "
            f"flow file where it is now, `flowcore run FILE.py --resume {run_id}`"
        )


def _run_recorded(
    spec: str,
    parameters: dict[str, Any],
    executor_name: str,
    resume_from: str | None,
    rerun_names: tuple[str, ...],
    progress: bool | None,
) -> None:
    loaded = load_flow(spec)
    flow = loaded.flow
    rerun = [_task_named(flow, name) for name in rerun_names]
    if rerun and resume_from is None:
        raise CliError("--rerun needs --resume RUN_ID (or --resume last)")
    checked_params(flow, parameters, required=resume_from is None)  # (resume: the run's)
    run_id = str(uuid.uuid4())
    try:
        state = flow.run(
            parameters=parameters,
            executor=_executor(executor_name),
            resume=resume_from,
            run_on_schedule=False if resume_from is not None else None,  # (one run resumed)
            rerun=rerun,
            progress=progress,
            flow_run_id=run_id,
            context={"checkpointing": True, "flow_source": loaded.spec},
        )
    except SystemExit as exc:  # (a task called sys.exit: the engine lets it through)
        _final_line(run_id, flow.name, "Failed", f"sys.exit({exc.code!r}) was called while it ran")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        _final_line(run_id, flow.name, "Cancelled", "Interrupted (KeyboardInterrupt)")
        raise SystemExit(1) from None
    if state is None:
        raise CliError("The flow did not run")
    _final_line(state.flow_run_id or run_id, flow.name, type(state).__name__, state.message)
    if not state.is_successful():
        raise SystemExit(1)


def _final_line(run_id: str, flow_name: str, state: str, message: object) -> None:
    """The last line on stderr: the run, and how it ended."""
    click.echo(
        f"Flow run {run_id} of {flow_name!r}: {state}" + (f" ({message})" if message else ""),
        err=True,
    )


def _task_named(flow: Any, name: str) -> Any:
    found = [t for t in flow.tasks if t.name == name or flow.slugs[t] == name]
    if len(found) != 1:
        what = "no task" if not found else f"{len(found)} tasks"
        raise CliError(
            f"Flow {flow.name!r} has {what} named {name!r}; give a task slug (`flowcore runs show` lists them)"
        )
    return found[0]


def _executor(name: str) -> Any:
    from flowcore.executors import DaskExecutor, LocalDaskExecutor, LocalExecutor

    if name == "local":
        return LocalExecutor()
    if name in ("threads", "processes"):
        return LocalDaskExecutor(scheduler=name)
    if name == "dask":
        return DaskExecutor()
    if name.startswith(("dask://", "tcp://")):
        return DaskExecutor(address="tcp://" + name.split("://", 1)[1])
    raise CliError(f"Unknown executor {name!r}: use {_EXECUTORS}")
