"""A recorded run drawn as a graph: one node per task, coloured by its state.

Drawn from what the store keeps (the flow's ``structure`` and each task as a whole:
:meth:`~flowcore.runs.store.RunStore.task_summaries`), so it needs neither the flow's code
nor the values, and neither its reading nor its size grows with the data: a mapped task is one box whose label counts its children by state
(``"load <map>\\n990 Success, 10 Failed"``), filled with the colour of its worst child
state, so a map of 100,000 children is still one node. Used by ``flowcore visualize`` and
the web UI; needs the ``viz`` extra (graphviz) to render.

For the web UI (``web=True``) each node also gets an ``id`` (``node-<n>``) and a link to
``#task-<n>``, ``n`` being the task's position in ``structure["tasks"]``, and a mapped
task's label ends with a progress bar: one cell per child state, as wide as its share of
the children (``n_map_states`` of the parent, or the children recorded so far), the
children not recorded yet grey; its cells sum to exactly its width and touch. Names reach the
drawing as text only, shown as written: plain labels go through ``graphviz.escape`` with
``&`` escaped too (Graphviz decodes entities), the progress label's text through
:func:`html.escape`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flowcore.engine import state as _states
from flowcore.runs.records import count_text
from flowcore.runs.states import is_finished
from flowcore.utilities._optional import import_optional

if TYPE_CHECKING:
    from flowcore.runs.records import TaskSummary

__all__ = ["run_graph", "state_color"]

# which child state colours a mapped task's box: the first found in this order
_PRECEDENCE = ("Crashed", "Failed", "TimedOut", "TriggerFailed", "ValidationFailed", "Running",
               "Retrying", "Pending", "Scheduled", "Paused", "Cancelled", "Skipped", "Cached",
               "Success")  # fmt: skip
_BAR_WIDTH = 120  # points: the progress bar of a mapped task's node (web=True)
_UNKNOWN = "#d0d0d0"


def state_color(name: str | None) -> str:
    """The colour of the state class called ``name`` (grey for unknown or None)."""
    found = getattr(_states, name, None) if name else None
    if isinstance(found, type) and issubclass(found, _states.State):
        return str(found.color)
    return _UNKNOWN


def run_graph(
    structure: dict[str, Any],
    summaries: Iterable[TaskSummary] = (),
    horizontal: bool = False,
    web: bool = False,
) -> Any:
    """A ``graphviz.Digraph`` of ``structure`` (a run's recorded graph), its nodes filled
    with the states of ``summaries`` (the run's tasks as wholes; none given: an uncoloured
    drawing of the flow). ``web``: node ids, links to the task rows and progress bars
    (module docstring)."""
    graphviz = import_optional("graphviz", "drawing a run (flowcore visualize)")
    known = list(summaries)
    own = {s.task_slug: s.record for s in known if s.record is not None}
    children = {s.task_slug: s.children for s in known if s.children}
    colored = bool(own or children)
    graph = graphviz.Digraph()
    if horizontal:
        graph.graph_attr["rankdir"] = "LR"
    if web:
        graph.node_attr["fontname"] = graph.edge_attr["fontname"] = "Helvetica,Arial,sans-serif"
    ids: dict[str, str] = {}
    for number, task in enumerate(structure.get("tasks", [])):
        slug = task["slug"]
        ids[slug] = f"t{number}"
        name = f"{task['name']} <map>" if task.get("mapped") else task["name"]
        counts = children.get(slug)
        parent = own.get(slug)
        state = parent.state if parent is not None else None
        if counts:
            state = next((s for s in _PRECEDENCE if s in counts), next(iter(counts)))
        if web and counts:
            total = max(parent.n_map_states or 0 if parent is not None else 0, sum(counts.values()))
            label = _progress_label(name, counts, total)
        else:
            label = _text(graphviz, name + ("\n" + count_text(counts) if counts else ""))
        attributes = {
            "shape": "box" if task.get("mapped") else "ellipse",
            "tooltip": _text(graphviz, slug),
        }
        if colored:
            attributes.update(style="filled", fillcolor=state_color(state) + "99")
        if web:
            attributes.update(id=f"node-{number}", href=f"#task-{number}", target="_self")
        graph.node(ids[slug], label, **attributes)
    for edge in structure.get("edges", []):
        if edge["upstream"] in ids and edge["downstream"] in ids:
            graph.edge(
                ids[edge["upstream"]],
                ids[edge["downstream"]],
                label=_text(graphviz, edge["key"]) if edge.get("key") else None,
                style="dashed" if edge.get("mapped") else None,
            )
    return graph


def _text(graphviz: Any, text: str) -> Any:
    """``text`` as a plain Graphviz string that shows as itself: ``graphviz.escape``
    leaves ``&`` alone, and Graphviz decodes entities (``&amp;`` would show as ``&``).
    What it returns is marked as no HTML-like label (keep it so: no ``str()``)."""
    return graphviz.escape(text.replace("&", "&amp;"))


def _progress_label(name: str, counts: Mapping[str, int], total: int) -> str:
    """A Graphviz HTML-like label: the name, the counts, how many are done, and a bar with
    a cell per child state, as wide as its share (grey: children not recorded yet). The
    bar is a table of its own, so its cells touch however wide the text above is."""
    done = sum(n for s, n in counts.items() if is_finished(s))
    order = sorted(counts, key=lambda s: (_rank(s), s))
    parts = [(state_color(s), counts[s]) for s in order]
    parts.append((_UNKNOWN, max(0, total - sum(counts.values()))))
    cells = [
        f'<TD WIDTH="{width}" HEIGHT="8" FIXEDSIZE="TRUE" BGCOLOR="{color}"></TD>'
        for (color, _), width in zip(parts, _bar_widths([n for _, n in parts], _BAR_WIDTH))
        if width
    ]
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
        f"<TR><TD>{html.escape(name)}</TD></TR>"
        f"<TR><TD>{html.escape(count_text(counts))}</TD></TR>"
        f"<TR><TD>{done} of {total} done</TD></TR>"
        f'<TR><TD><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0" '
        f'FIXEDSIZE="TRUE" WIDTH="{_BAR_WIDTH}" HEIGHT="8">'
        f"<TR>{''.join(cells)}</TR></TABLE></TD></TR></TABLE>>"
    )


def _bar_widths(shares: list[int], width: int) -> list[int]:
    """Whole widths for ``shares`` that sum to exactly ``width`` (when any share is
    non-zero), each as near its share as can be and at least 1 for a non-zero share
    (while ``width`` allows): largest remainders get the rounding.

    >>> _bar_widths([4995, 5], 120)
    [119, 1]
    >>> _bar_widths([1, 1, 1], 10)
    [4, 3, 3]
    >>> _bar_widths([0, 7], 120)
    [0, 120]
    """
    total = sum(shares)
    if total <= 0:
        return [0] * len(shares)
    exact = [width * n / total for n in shares]
    widths = [int(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: widths[i] - exact[i])
    for i in by_remainder[: width - sum(widths)]:
        widths[i] += 1
    for i, n in enumerate(shares):  # a sliver stays visible, taken from the widest
        if n and not widths[i] and max(widths) > 1:
            widths[widths.index(max(widths))] -= 1
            widths[i] = 1
    return widths


def _rank(state: str) -> int:
    """Success-like states first in the bar, failures last."""
    return len(_PRECEDENCE) - _PRECEDENCE.index(state) if state in _PRECEDENCE else 0
