"""A recorded run drawn as a graph: one node per task, coloured by its state.

Drawn from what the store keeps (the flow's ``structure`` and the latest state of each
task run), so it needs neither the flow's code nor the values, and its size does not grow
with the data: a mapped task is one box whose label counts its children by state
(``"load <map>\\n990 Success, 10 Failed"``), filled with the colour of its worst child
state, so a map of 100,000 children is still one node. Used by ``flowcore visualize`` and
the web UI; needs the ``viz`` extra (graphviz) to render.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowcore.engine import state as _states
from flowcore.utilities._optional import import_optional

if TYPE_CHECKING:
    from flowcore.runs.store import TaskRunInfo

__all__ = ["run_graph", "state_color"]

# which child state colours a mapped task's box: the first found in this order
_PRECEDENCE = ("Crashed", "Failed", "TimedOut", "TriggerFailed", "ValidationFailed", "Running",
               "Retrying", "Pending", "Scheduled", "Paused", "Cancelled", "Skipped", "Cached",
               "Success")  # fmt: skip


def state_color(name: str | None) -> str:
    """The colour of the state class called ``name`` (grey for unknown or None)."""
    found = getattr(_states, name, None) if name else None
    if isinstance(found, type) and issubclass(found, _states.State):
        return str(found.color)
    return "#d0d0d0"


def run_graph(
    structure: dict[str, Any], task_runs: Iterable[TaskRunInfo] = (), horizontal: bool = False
) -> Any:
    """A ``graphviz.Digraph`` of ``structure`` (a run's recorded graph), its nodes filled
    with the states of ``task_runs`` (none given: an uncoloured drawing of the flow)."""
    graphviz = import_optional("graphviz", "drawing a run (flowcore visualize)")
    own: dict[str, str] = {}
    children: dict[str, Counter[str]] = {}
    for record in task_runs:
        if record.map_index < 0:
            own[record.task_slug] = record.state
        else:
            children.setdefault(record.task_slug, Counter())[record.state] += 1
    colored = bool(own or children)
    graph = graphviz.Digraph()
    if horizontal:
        graph.graph_attr["rankdir"] = "LR"
    ids: dict[str, str] = {}
    for number, task in enumerate(structure.get("tasks", [])):
        slug = task["slug"]
        ids[slug] = f"t{number}"
        label = f"{task['name']} <map>" if task.get("mapped") else task["name"]
        counts = children.get(slug)
        state = own.get(slug)
        if counts:
            label += "\n" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda i: (-i[1], i[0])))
            state = next((s for s in _PRECEDENCE if s in counts), next(iter(counts)))
        attributes = {"shape": "box" if task.get("mapped") else "ellipse", "tooltip": slug}
        if colored:
            attributes.update(style="filled", fillcolor=state_color(state) + "99")
        graph.node(ids[slug], graphviz.escape(label), **attributes)
    for edge in structure.get("edges", []):
        if edge["upstream"] in ids and edge["downstream"] in ids:
            graph.edge(
                ids[edge["upstream"]], ids[edge["downstream"]], label=edge.get("key") or None,
                style="dashed" if edge.get("mapped") else None,
            )
    return graph
