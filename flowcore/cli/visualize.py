"""``flowcore visualize FILE.py[:FLOW] [--run RUN_ID|last] [-o out.svg]``: draw a flow, or one
of its recorded runs with each task coloured by its state (:mod:`flowcore.runs.graph`:
a mapped task is one node with its children counted by state). The format follows the
output's suffix (svg, png, pdf, dot, ...); the default output is the flow's name made
into a file name, with ``.svg``.
Needs the ``viz`` extra and Graphviz's ``dot``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flowcore.cli import CliError
from flowcore.cli.loading import load_flow

__all__ = ["visualize"]


@click.command("visualize")
@click.argument("flow_file", metavar="FILE.py[:FLOW]")
@click.option(
    "--run",
    "run_id",
    metavar="RUN_ID|last",
    help="Colour the tasks by this run's states (last: the flow's newest run).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the drawing (its suffix names the format; default <flow>.svg).",
)
@click.option("--horizontal", is_flag=True, help="Draw left to right.")
@click.option("--store", help="The run store (default: config runs.store).")
def visualize(
    flow_file: str, run_id: str | None, output: Path | None, horizontal: bool, store: str | None
) -> None:
    """Draw the flow FLOW of FILE.py."""
    from flowcore.core._flow_io import slugify
    from flowcore.engine.flow_run import run_structure
    from flowcore.runs.graph import run_graph

    flow = load_flow(flow_file).flow
    summaries = []
    if run_id is not None:
        from flowcore.cli.runs import find_run, naming_store_source, open_cli_store

        with naming_store_source(store):
            opened = open_cli_store(store)
            found = find_run(opened, run_id, flow=flow.name)
            if found.flow_name != flow.name:
                raise CliError(
                    f"Run {found.run_id} is a run of {found.flow_name!r}, not of {flow.name!r}"
                )
            summaries = opened.task_summaries(found.run_id)
    graph = run_graph(run_structure(flow), summaries, horizontal=horizontal)
    target = output or Path(f"{slugify(flow.name) or 'flow'}.svg")
    fmt = target.suffix.lstrip(".").lower() or "svg"
    if fmt not in _FORMATS:
        raise CliError(
            f"Cannot draw {target}: {fmt!r} is not a format flowcore visualize writes; end "
            f"the output's name with one of {', '.join('.' + f for f in _FORMATS)}"
        )
    if not target.parent.is_dir():
        raise CliError(
            f"Cannot write {target}: the directory {str(target.parent)!r} does not exist"
        )
    data = graph.source.encode() if fmt in ("dot", "gv") else _drawn(graph, fmt)
    target.write_bytes(data)
    click.echo(str(target))


# what Graphviz's dot writes to a file (its interactive formats, x11 or gtk, open windows)
_FORMATS = ("svg", "png", "pdf", "jpg", "jpeg", "gif", "ps", "eps", "json", "plain", "dot", "gv")


def _drawn(graph: Any, fmt: str) -> bytes:
    """``graph`` drawn by Graphviz's ``dot`` in ``fmt``; its failures as one-line errors."""
    import subprocess

    import graphviz

    from flowcore.core._flow_io import dot_missing

    try:
        return graph.pipe(format=fmt)  # type: ignore[no-any-return]
    except graphviz.backend.ExecutableNotFound:
        raise CliError(dot_missing("flowcore visualize")) from None
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise CliError(
            f"Graphviz's dot could not draw the flow as {fmt}: "
            + (said[-1] if said else f"it exited with status {exc.returncode}")
        ) from None
