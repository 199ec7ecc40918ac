"""The run graph as the UI draws it (``run_graph(..., web=True)``): node ids, links to
the task rows, progress bars, and names that stay text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from flowcore.runs.graph import run_graph, state_color
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
