"""Flow persistence (``flow.save`` / ``Flow.load``) and drawing (``flow.visualize``).

``save`` cloudpickles the flow into a small JSON envelope that also records the library
versions it was built with, so that a load that fails can say which version differs. The
default location is Prefect 1's, ``<config.home_dir>/flows/<slugified flow name>.prefect``
(``Flow.load(name)`` reads it, and falls back to the ``.flowcore`` name that earlier
flowcore versions wrote); writes are atomic (temporary file, then rename).

``visualize`` draws the graph with the ``graphviz`` package (extra ``viz``) and Graphviz's
``dot`` program: one node per task (a box labelled ``name <map>`` for mapped tasks, one
per child when a flow state is given), one edge per dependency labelled with its argument
name, dashed when mapped. With ``flow_state`` each node is filled with its state's colour.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import tempfile
import unicodedata
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from flowcore import configuration
from flowcore.utilities import context as _context
from flowcore.utilities._optional import import_optional

if TYPE_CHECKING:
    from flowcore.core.edge import Edge
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task
    from flowcore.engine.state import State

__all__ = ["default_flow_path", "load_flow", "save_flow", "slugify", "visualize_flow"]

FLOW_SUFFIX = ".prefect"
_LEGACY_SUFFIX = ".flowcore"


def slugify(text: str) -> str:
    """A lower-case, dash-separated form of ``text`` for a file name: accents are dropped,
    and letters of other scripts kept (dropping them made every Chinese, Greek or Russian
    name ``flow``, so flows saved under such names overwrote each other).

    >>> slugify("My Flow: ETL (v2)")
    'my-flow-etl-v2'
    >>> slugify("Café déjà vu")
    'cafe-deja-vu'
    >>> slugify("数据流"), slugify("Поток 2"), slugify("snake_case")
    ('数据流', 'поток-2', 'snake-case')
    """
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "-", plain.lower()).strip("-")


def _ascii_slug(text: str) -> str:
    """The file name of a flow before names kept their letters of other scripts (only
    ``a-z0-9`` were kept): a flow saved then is still loaded by its name."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def default_flow_path(name: str, suffix: str = FLOW_SUFFIX) -> Path:
    """``<home_dir>/flows/<slug>.prefect``, with ``home_dir`` from the active config."""
    config = _context.current().get("config") or configuration.config
    home = Path(os.path.expanduser(str(config.home_dir)))
    return home / "flows" / f"{slugify(name) or 'flow'}{suffix}"


def _versions() -> dict[str, str]:
    from importlib import metadata

    try:
        flowcore_version = metadata.version("flowcore")
    except metadata.PackageNotFoundError:
        flowcore_version = "unknown"
    return {
        "cloudpickle": cloudpickle.__version__,
        "flowcore": flowcore_version,
        "python": ".".join(str(part) for part in sys.version_info[:3]),
    }


def save_flow(flow: Flow, fpath: str | os.PathLike[str] | None = None) -> str:
    """Write ``flow`` to ``fpath`` (default: :func:`default_flow_path`); return the path."""
    path = Path(fpath) if fpath is not None else default_flow_path(flow.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = base64.b64encode(cloudpickle.dumps(flow)).decode("ascii")
    data = json.dumps({"flow": payload, "versions": _versions()}).encode("utf-8")
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return str(path)


def load_flow(fpath: str | os.PathLike[str]) -> Flow:
    """Read a flow written by :func:`save_flow`.

    ``fpath`` is a file path (absolute, or relative to the working directory when that
    file exists) or else the name of a flow saved at its default location.
    """
    path = Path(fpath)
    if not path.is_absolute() and not path.is_file():
        path = default_flow_path(str(fpath))
        earlier = [default_flow_path(str(fpath), _LEGACY_SUFFIX)]  # (an older suffix)
        ascii_name = _ascii_slug(str(fpath))
        if ascii_name:  # (an ASCII-only name; not "flow", which all such names shared)
            earlier.append(path.with_name(f"{ascii_name}{FLOW_SUFFIX}"))
        if not path.is_file():
            path = next((p for p in earlier if p.is_file()), path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No saved flow at {path}; save one with flow.save() or pass the file's path"
        )
    raw = path.read_bytes()
    try:
        envelope = json.loads(raw.decode("utf-8"))
        flow_bytes = base64.b64decode(envelope["flow"])
        saved_versions = dict(envelope.get("versions") or {})
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        flow_bytes, saved_versions = raw, {}  # a bare cloudpickle
    try:
        return cloudpickle.loads(flow_bytes)  # type: ignore[no-any-return]
    except Exception as exc:
        current = _versions()
        mismatches = [
            f"{name}: saved with {saved!r}, running {current[name]!r}"
            for name, saved in sorted(saved_versions.items())
            if name in current and current[name] != saved
        ]
        hint = f" Version differences: {'; '.join(mismatches)}." if mismatches else ""
        if isinstance(exc, ImportError):
            hint += " A module the flow uses may be missing from this environment."
        raise RuntimeError(f"Could not load the flow saved at {path}: {exc!r}.{hint}") from exc


# -- visualize ------------------------------------------------------------------------------


def visualize_flow(
    flow: Flow,
    flow_state: State | None = None,
    filename: str | None = None,
    format: str | None = None,
    horizontal: bool = False,
) -> Any:
    """Draw ``flow`` and return the ``graphviz.Digraph`` (see ``Flow.visualize``)."""
    graphviz = import_optional("graphviz", "flow.visualize()")
    graph = graphviz.Digraph()
    if horizontal:
        graph.graph_attr["rankdir"] = "LR"
    drawing = _Drawing(flow, flow_state, graph, graphviz)
    for task in flow.sorted_tasks():
        drawing.add_task(task)
    for edge in drawing.sorted_edges():
        drawing.add_edge(edge)
    if filename:
        _render(graphviz, graph, filename, format=format)
    elif not _in_notebook():
        # one file per flow name in a fixed directory, replaced by the next drawing: no
        # temporary directory is left behind, and the viewer (which opens the file after
        # this returns) still finds it when the process has exited
        config = _context.current().get("config") or configuration.config
        target = Path(os.path.expanduser(str(config.home_dir))) / "visualize"
        target.mkdir(parents=True, exist_ok=True)
        rendered = _render(
            graphviz, graph, str(target / (slugify(flow.name) or "flow")), format=format
        )
        if _headless():  # (xdg-open would only print why it cannot open anything)
            flow.logger.warning(
                f"Rendered {flow.name!r} to {rendered} but could not open a viewer (no "
                "display: neither DISPLAY nor WAYLAND_DISPLAY is set); pass filename=... to "
                "choose where the drawing is written."
            )
            return graph
        try:
            with warnings.catch_warnings():
                # graphviz starts the viewer and drops its Popen at once; the viewer outlives
                # the call by design, so its "subprocess is still running" is not a leak
                warnings.simplefilter("ignore", ResourceWarning)
                graphviz.view(rendered)
        except (OSError, RuntimeError) as exc:
            flow.logger.warning(
                f"Rendered {flow.name!r} to {rendered} but could not open a viewer ({exc}); "
                "pass filename=... to choose where the drawing is written."
            )
    return graph


class _Drawing:
    """Node ids and styles for one ``visualize`` call."""

    def __init__(self, flow: Flow, flow_state: State | None, graph: Any, graphviz: Any) -> None:
        self.flow = flow
        self.graph = graph
        self.graphviz = graphviz
        self.states: dict[Task, State] | None = None
        if flow_state is not None and isinstance(flow_state.result, dict):
            self.states = flow_state.result
        self.ids = {task: f"t{i}" for i, task in enumerate(flow.sorted_tasks())}
        self.mapped = {t for t in flow.tasks if any(e.mapped for e in flow.edges_to(t))}

    def children(self, task: Task) -> list[State] | None:
        """The child states of a mapped task in the given flow state (None: draw one node)."""
        if self.states is None or task not in self.mapped:
            return None
        state = self.states.get(task)
        return list(state.map_states) if state is not None and state.is_mapped() else None  # type: ignore[attr-defined]

    def style(self, state: State | None) -> dict[str, str]:
        if self.states is None:
            return {}
        color = state.color + "80" if state is not None else "#00000080"
        return {"color": color, "style": "filled", "colorscheme": "svg"}

    def add_task(self, task: Task) -> None:
        is_mapped = task in self.mapped
        label = self.graphviz.escape(f"{task.name} <map>" if is_mapped else task.name)
        shape = "box" if is_mapped else "ellipse"
        children = self.children(task)
        if children is None:
            state = None if self.states is None else self.states.get(task)
            self.graph.node(self.ids[task], label, shape=shape, **self.style(state))
            return
        for index, child in enumerate(children):
            self.graph.node(f"{self.ids[task]}_{index}", label, shape=shape, **self.style(child))

    def sorted_edges(self) -> list[Edge]:
        ids = self.ids
        return sorted(
            self.flow.edges,
            key=lambda e: (ids[e.downstream_task], ids[e.upstream_task], e.key or ""),
        )

    def node_ids(self, task: Task, count: int) -> list[str]:
        """``count`` node ids for ``task``: its children's if it was drawn per child."""
        children = self.children(task)
        if children is None:
            return [self.ids[task]] * count
        return [f"{self.ids[task]}_{i}" for i in range(len(children))][:count]

    def add_edge(self, edge: Edge) -> None:
        style = "dashed" if edge.mapped else None
        up, down = edge.upstream_task, edge.downstream_task
        down_children = self.children(down)
        up_children = self.children(up)
        if down_children is not None and (edge.mapped or up_children is None):
            pairs = zip(
                self.node_ids(up, len(down_children)), self.node_ids(down, len(down_children))
            )
        elif up_children is not None:
            count = len(up_children)
            pairs = zip(self.node_ids(up, count), self.node_ids(down, count))
        else:
            pairs = zip([self.ids[up]], [self.ids[down]])
        for tail, head in pairs:
            self.graph.edge(tail, head, edge.key, style=style)


def _render(graphviz: Any, graph: Any, filename: str, format: str | None) -> str:
    """Render to ``filename`` plus the format's suffix; return the written path."""
    try:
        return graph.render(filename, format=format, cleanup=True)  # type: ignore[no-any-return]
    except graphviz.backend.ExecutableNotFound as exc:
        error = graphviz.backend.ExecutableNotFound(("dot",))
        error.args = (dot_missing("flow.visualize()"),)
        raise error from exc


def dot_missing(who: str) -> str:
    """What to do when Graphviz's ``dot`` program is not found, for ``who`` needs it."""
    return (
        f"{who} needs Graphviz's `dot` program on the PATH, and it was not "
        "found. Install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
        "install graphviz; see https://graphviz.org/download/); the `graphviz` Python "
        "package alone is not enough."
    )


def _headless() -> bool:
    """Whether this is a Linux (or BSD) machine with no display to open a viewer on
    (macOS and Windows open files without one)."""
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ipython = shell.get_ipython()
        return ipython is not None and "IPKernelApp" in ipython.config
    except Exception:
        return False
