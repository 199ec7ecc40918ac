"""The run graph as the UI draws it (``run_graph(..., web=True)``): node ids, links to
the task rows, progress bars, and names that stay text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from flowcore.runs.graph import _BAR_WIDTH, run_graph, state_color
from flowcore.runs.records import TaskRunInfo, TaskSummary
from flowcore.ui.runs_pages import _plain_svg

NAME = '<script>alert("x")</script> & co'
STRUCTURE = {
    "tasks": [
        {"slug": "load-1", "name": "load", "mapped": False},
        {"slug": "evil-1", "name": NAME, "mapped": True},
    ],
    "edges": [{"upstream": "load-1", "downstream": "evil-1", "key": "x", "mapped": True}],
}


def _record(slug: str, index: int, state: str, n_map: int | None = None) -> TaskRunInfo:
    return TaskRunInfo(slug, index, state, None, None, None, 1, None, n_map)


SUMMARIES = [
    TaskSummary("load-1", _record("load-1", -1, "Success")),
    TaskSummary(
        "evil-1",
        _record("evil-1", -1, "Mapped", n_map=10),
        {"Success": 6, "Failed": 1, "Running": 1},
    ),
]


def _svg(**options: bool) -> str:
    return str(run_graph(STRUCTURE, SUMMARIES, **options).pipe(format="svg").decode())


def test_web_nodes_have_ids_links_and_a_progress_bar() -> None:
    svg = _svg(web=True)
    root = ET.fromstring(svg[svg.index("<svg") :])
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[:1] == ["load"] and NAME + " <map>" in texts
    assert "6 Success, 1 Failed, 1 Running" in texts and "7 of 10 done" in texts
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {"node-0", "node-1"} <= ids
    links = {
        a.get("{http://www.w3.org/1999/xlink}href")
        for a in root.iter("{http://www.w3.org/2000/svg}a")
    }
    assert links == {"#task-0", "#task-1"}
    node = next(g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("id") == "node-1")
    bar = [
        p.get("fill")
        for p in node.iter("{http://www.w3.org/2000/svg}polygon")
        if p.get("stroke") == "transparent"
    ]
    assert bar == [state_color(s) for s in ("Success", "Running", "Failed")] + [
        "#d0d0d0"
    ]  # then not yet
    assert _plain_svg(svg[svg.index("<svg") :])


def test_plain_drawing_is_unchanged_for_visualize() -> None:
    svg = _svg()
    assert (
        "6 Success, 1 Failed, 1 Running" in svg and "of 10 done" not in svg and "node-1" not in svg
    )
    assert "&lt;script&gt;" in svg and "<script>" not in svg


def test_plain_svg_refuses_scripts_handlers_and_outside_links() -> None:
    base = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">{}</svg>'
    assert _plain_svg(base.format('<g><a xlink:href="#task-1"><text>ok</text></a></g>'))
    assert not _plain_svg(base.format("<script>alert(1)</script>"))
    assert not _plain_svg(base.format('<g onload="alert(1)"></g>'))
    assert not _plain_svg(base.format('<a xlink:href="javascript:alert(1)"><text>x</text></a>'))
    assert not _plain_svg(base.format("<foreignObject><div/></foreignObject>"))
    assert not _plain_svg("<svg")


def _bar(svg: str, node_id: str) -> list[tuple[str, float, float]]:
    """The progress bar of node ``node_id``: each cell's colour, left and right edge."""
    root = ET.fromstring(svg[svg.index("<svg") :])
    node = next(g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("id") == node_id)
    cells = []
    for polygon in node.iter("{http://www.w3.org/2000/svg}polygon"):
        if polygon.get("stroke") == "transparent":
            xs = [float(point.split(",")[0]) for point in str(polygon.get("points")).split()]
            cells.append((str(polygon.get("fill")), min(xs), max(xs)))
    return cells


def test_the_progress_bar_is_its_width_without_gaps() -> None:
    """Under a label wider than the bar, all done with a sliver of failures: the cells
    touch and fill the bar exactly (no white gap, no overflow)."""
    structure = {"tasks": [{"slug": "sq-1", "name": "square with a long name", "mapped": True}]}
    for counts, n_map in (({"Success": 4995, "Failed": 5}, 5000), ({"Success": 6, "Failed": 1, "Running": 1}, 10)):  # fmt: skip
        summaries = [TaskSummary("sq-1", _record("sq-1", -1, "Mapped", n_map=n_map), counts)]
        svg = run_graph(structure, summaries, web=True).pipe(format="svg").decode()
        cells = _bar(svg, "node-0")
        assert all(left == right for (_, _, right), (_, left, _) in zip(cells, cells[1:])), cells
        assert cells[-1][2] - cells[0][1] == pytest.approx(_BAR_WIDTH), cells
        assert [fill for fill, _, _ in cells][-1] == (
            state_color("Failed") if n_map == 5000 else "#d0d0d0"
        )


def test_names_with_entities_show_as_written() -> None:
    """Graphviz decodes entities in labels: a task named ``a &amp; b`` must not show ``a & b``."""
    name = "a &amp; b &lt;c&gt; & d"
    structure = {
        "tasks": [{"slug": "x-1", "name": name}, {"slug": "y-1", "name": name, "mapped": True}],
        "edges": [{"upstream": "x-1", "downstream": "y-1", "key": "&amp;", "mapped": True}],
    }
    summaries = [TaskSummary("y-1", _record("y-1", -1, "Mapped", n_map=1), {"Success": 1})]
    for web in (False, True):
        svg = run_graph(structure, summaries, web=web).pipe(format="svg").decode()
        root = ET.fromstring(svg[svg.index("<svg") :])
        texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
        assert name in texts and name + " <map>" in texts and "&amp;" in texts, texts
