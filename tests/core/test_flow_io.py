"""``flow.save`` / ``Flow.load`` and ``flow.visualize`` (reference 2.4).

Saves go to ``tmp_path`` (``home_dir`` is pointed there, with ``HOME`` too), never to the
real home directory. The drawings are rendered by Graphviz's ``dot`` for real.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import graphviz
import pytest

from flowcore import Flow, Parameter, task
from flowcore.core._flow_io import default_flow_path, slugify
from flowcore.engine.state import Failed, Mapped, Success, TriggerFailed
from flowcore.exceptions import MissingExtraError
from flowcore.schedules import IntervalSchedule
from flowcore.utilities.configuration import set_temporary_config


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def double(x: int) -> int:
    if x == 2:
        raise ValueError("two is not allowed")
    return 2 * x


@task
def total(xs: list[Any]) -> int:
    return sum(x for x in xs if isinstance(x, int))


def demo_flow(name: str = "My Demo Flow") -> tuple[Flow, dict[str, Any]]:
    with Flow(name) as flow:
        n = Parameter("n", default=3)
        nums = numbers(n)
        doubled = double.map(nums)
        summed = total(doubled)
    return flow, {"n": n, "numbers": nums, "double": doubled, "total": summed}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``home_dir`` = ``~/fc-home`` with ``~`` = ``tmp_path``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    with set_temporary_config({"home_dir": "~/fc-home"}):
        yield tmp_path / "fc-home"


# -- save / load ----------------------------------------------------------------------------


def test_save_defaults_to_home_dir_flows_slug(home: Path) -> None:
    flow, _ = demo_flow()
    path = flow.save()
    assert path == str(home / "flows" / "my-demo-flow.prefect")
    assert default_flow_path("My Demo Flow") == Path(path)
    assert os.listdir(home / "flows") == ["my-demo-flow.prefect"]  # no temporary file left


def test_save_without_a_path_writes_where_load_by_name_looks(home: Path) -> None:
    # verified against prefect 1.4.1: <home_dir>/flows/<slug>.prefect; load takes the
    # flow's name or its slug
    flow = Flow("I aM a-test!", tasks=[numbers])
    assert flow.save() == str(home / "flows" / "i-am-a-test.prefect")
    for name in ("I aM a-test!", "i-am-a-test"):
        loaded = Flow.load(name)
        assert loaded.name == "I aM a-test!"
        assert [t.slug for t in loaded.tasks] == [numbers.slug]
    assert Flow.load(str(home / "flows" / "i-am-a-test.prefect")).name == flow.name


def test_load_by_name_finds_a_flow_saved_by_earlier_flowcore_versions(home: Path) -> None:
    flow, _ = demo_flow("Old Save")
    (home / "flows").mkdir(parents=True)
    flow.save(str(home / "flows" / "old-save.flowcore"))
    assert Flow.load("Old Save").name == "Old Save"


def test_names_in_other_scripts_get_files_of_their_own(home: Path) -> None:
    # (every letter outside a-z was dropped: all of these were saved as flow.prefect, each
    # over the other, and Flow.load by name returned whichever came last)
    names = ["数据流", "報告", "Поток", "αβγ"]
    for name in names:
        demo_flow(name)[0].save()
    assert sorted(os.listdir(home / "flows")) == sorted(f"{n.lower()}.prefect" for n in names)
    assert [Flow.load(name).name for name in names] == names
    # a name whose file an earlier version gave only its a-z letters is still found
    flow, _ = demo_flow("Søren flow")
    flow.save(str(home / "flows" / "sren-flow.prefect"))
    assert Flow.load("Søren flow").name == "Søren flow"


def test_load_by_name_and_run(home: Path) -> None:
    flow, tasks = demo_flow()
    flow.save()
    loaded = Flow.load("My Demo Flow")
    assert loaded is not flow
    assert loaded.name == "My Demo Flow"
    assert {t.name for t in loaded.tasks} == {t.name for t in flow.tasks}
    state = loaded.run(n=2)
    assert state is not None
    result = {t.name: s for t, s in state.result.items()}
    assert result["total"].result == 2
    assert type(result["double"]) is Mapped


def test_save_and_load_an_explicit_path(tmp_path: Path) -> None:
    flow, _ = demo_flow()
    target = tmp_path / "nested" / "dir" / "flow.bin"
    assert flow.save(str(target)) == str(target)
    loaded = Flow.load(str(target))
    assert loaded.name == flow.name
    assert len(loaded.edges) == len(flow.edges)


def test_load_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    flow, _ = demo_flow()
    flow.save("relative.flowcore")
    assert Flow.load("relative.flowcore").name == flow.name


def test_save_keeps_the_schedule_and_reference_tasks(tmp_path: Path) -> None:
    flow, tasks = demo_flow()
    from datetime import timedelta

    flow.schedule = IntervalSchedule(interval=timedelta(hours=1))
    flow.set_reference_tasks([tasks["numbers"]])
    loaded = Flow.load(flow.save(str(tmp_path / "f.flowcore")))
    assert [t.name for t in loaded.reference_tasks()] == ["numbers"]
    assert loaded.schedule.clocks[0].interval == timedelta(hours=1)


def test_load_a_missing_flow(home: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No saved flow at .*nothing-here.prefect"):
        Flow.load("Nothing here")


def test_load_a_bare_cloudpickle(tmp_path: Path) -> None:
    flow, _ = demo_flow()
    path = tmp_path / "bare.pkl"
    path.write_bytes(cloudpickle.dumps(flow))
    assert Flow.load(str(path)).name == flow.name


def test_load_names_version_differences_when_unpickling_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.flowcore"
    envelope = {
        "flow": base64.b64encode(b"not a pickle").decode(),
        "versions": {"cloudpickle": "0.0.1", "python": "2.7.18"},
    }
    path.write_text(json.dumps(envelope))
    with pytest.raises(RuntimeError, match="Could not load the flow saved at") as info:
        Flow.load(str(path))
    message = str(info.value)
    assert "cloudpickle: saved with '0.0.1'" in message
    assert "python: saved with '2.7.18'" in message


def test_load_says_when_a_module_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "fc_io_gone_module.py").write_text(
        "from flowcore import Task\n\nclass Gone(Task):\n    def run(self):\n        return 1\n"
    )
    monkeypatch.syspath_prepend(str(module_dir))
    import fc_io_gone_module  # type: ignore[import-not-found]

    with Flow("uses a module") as flow:
        fc_io_gone_module.Gone()()  # a class from a module is pickled by reference
    path = flow.save(str(tmp_path / "f.flowcore"))
    monkeypatch.delitem(sys.modules, "fc_io_gone_module")
    shutil.rmtree(module_dir)
    with pytest.raises(RuntimeError, match="may be missing from this environment"):
        Flow.load(path)


def test_slugify() -> None:
    assert slugify("ETL: daily / v2") == "etl-daily-v2"
    assert slugify("!!!") == ""
    assert default_flow_path("!!!").name == "flow.prefect"


# -- visualize ------------------------------------------------------------------------------


def nodes(graph: Any) -> list[str]:
    return [line.strip() for line in graph.body if "->" not in line]


def edges(graph: Any) -> list[str]:
    return [line.strip() for line in graph.body if "->" in line]


def test_visualize_without_state(tmp_path: Path) -> None:
    flow, _ = demo_flow()
    graph = flow.visualize(filename=str(tmp_path / "plain"), format="png")
    assert isinstance(graph, graphviz.Digraph)
    assert nodes(graph) == [
        "t0 [label=n shape=ellipse]",
        "t1 [label=numbers shape=ellipse]",
        't2 [label="double <map>" shape=box]',
        "t3 [label=total shape=ellipse]",
    ]
    assert edges(graph) == [
        "t0 -> t1 [label=n]",
        "t1 -> t2 [label=x style=dashed]",
        "t2 -> t3 [label=xs]",
    ]
    assert (tmp_path / "plain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "plain").exists()  # the dot source is cleaned up


def test_visualize_with_a_flow_state_colours_nodes_and_splits_mapped_tasks(tmp_path: Path) -> None:
    flow, _ = demo_flow()
    state = flow.run()
    assert state is not None
    graph = flow.visualize(flow_state=state, filename=str(tmp_path / "state"), format="png")
    ok, failed = Success.color + "80", Failed.color + "80"
    trigger_failed = TriggerFailed.color + "80"
    style = "colorscheme=svg shape={} style=filled"
    assert nodes(graph) == [
        f't0 [label=n color="{ok}" {style.format("ellipse")}]',
        f't1 [label=numbers color="{ok}" {style.format("ellipse")}]',
        f't2_0 [label="double <map>" color="{ok}" {style.format("box")}]',
        f't2_1 [label="double <map>" color="{ok}" {style.format("box")}]',
        f't2_2 [label="double <map>" color="{failed}" {style.format("box")}]',
        f't3 [label=total color="{trigger_failed}" {style.format("ellipse")}]',
    ]
    assert edges(graph) == [
        "t0 -> t1 [label=n]",
        "t1 -> t2_0 [label=x style=dashed]",
        "t1 -> t2_1 [label=x style=dashed]",
        "t1 -> t2_2 [label=x style=dashed]",
        "t2_0 -> t3 [label=xs]",
        "t2_1 -> t3 [label=xs]",
        "t2_2 -> t3 [label=xs]",
    ]
    png = (tmp_path / "state.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_visualize_mapped_over_mapped_pairs_children(tmp_path: Path) -> None:
    with Flow("chain") as flow:
        first = double.map([0, 1])
        double.map(first)
    state = flow.run()
    graph = flow.visualize(flow_state=state, filename=str(tmp_path / "chain"), format="png")
    assert edges(graph) == [
        "t0 -> t1_0 [label=x style=dashed]",
        "t0 -> t1_1 [label=x style=dashed]",
        "t1_0 -> t2_0 [label=x style=dashed]",
        "t1_1 -> t2_1 [label=x style=dashed]",
    ]


def test_visualize_horizontal_and_unknown_states(tmp_path: Path) -> None:
    flow, tasks = demo_flow()
    partial = Success(result={tasks["n"]: Success()})
    graph = flow.visualize(
        flow_state=partial, filename=str(tmp_path / "h"), format="svg", horizontal=True
    )
    assert graph.graph_attr["rankdir"] == "LR"
    assert 'color="#00000080"' in nodes(graph)[1]  # no state for ``numbers``
    assert "double <map>" in nodes(graph)[2]  # a mapped task without a Mapped state: one node
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")


def test_visualize_escapes_names(tmp_path: Path) -> None:
    with Flow("odd names") as flow:
        double.copy(name="<b>bold</b> \\ back")(1)
    graph = flow.visualize(filename=str(tmp_path / "odd"), format="png")
    assert "<b>bold</b>" in graph.source
    assert (tmp_path / "odd.png").exists()


def _bin_with_dot(tmp_path: Path) -> Path:
    """A directory holding Graphviz's ``dot`` alone, for a PATH without a viewer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dot = shutil.which("dot")
    assert dot is not None
    (bin_dir / "dot").symlink_to(dot)
    return bin_dir


def test_visualize_without_filename_opens_a_viewer_or_says_where_the_file_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(_bin_with_dot(tmp_path)))  # dot, but no viewer (xdg-open)
    flow, _ = demo_flow()
    flow.visualize()
    (warning,) = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert "could not open a viewer" in warning
    rendered = warning.split(" to ", 1)[1].split(" but ", 1)[0]
    assert rendered.endswith("my-demo-flow.pdf") and Path(rendered).is_file()


def test_visualize_without_filename_and_without_a_display_says_where_the_file_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    # xdg-open is there but there is no display: it printed six lines of why it could not
    # open anything, and nobody said where the drawing went
    bin_dir = _bin_with_dot(tmp_path)
    opened = tmp_path / "opened"
    viewer = bin_dir / "xdg-open"
    viewer.write_text(f'#!/bin/sh\necho "$@" > {opened}\n')
    viewer.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    flow, _ = demo_flow()
    flow.visualize()
    (warning,) = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert "could not open a viewer (no display: neither DISPLAY nor WAYLAND_DISPLAY" in warning
    assert Path(warning.split(" to ", 1)[1].split(" but ", 1)[0]).is_file()
    assert not opened.exists()


def test_visualize_needs_the_graphviz_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)
    flow, _ = demo_flow()
    with pytest.raises(ImportError, match=r"pip install 'flowcore\[viz\]'") as info:
        flow.visualize()
    assert isinstance(info.value, MissingExtraError)


def test_visualize_needs_the_dot_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    flow, _ = demo_flow()
    with pytest.raises(graphviz.ExecutableNotFound, match="needs Graphviz's `dot` program"):
        flow.visualize(filename=str(tmp_path / "never"), format="png")


def test_visualize_the_demo_flow_as_png(tmp_path: Path) -> None:
    """examples/demo.py's flow, run with checkpoints in tmp_path, drawn with its states."""
    import importlib.util

    from flowcore.engine.results import LocalResult

    demo_path = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
    spec = importlib.util.spec_from_file_location("flowcore_demo_for_viz", demo_path)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo.flow.result = LocalResult(
        dir=str(tmp_path / "results"), location="{day}/{task_full_name}.pkl"
    )
    state = demo.flow.run(context={"checkpointing": True})
    assert state is not None and state.is_successful()
    graph = demo.flow.visualize(flow_state=state, filename=str(tmp_path / "demo"), format="png")
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = graph.source
    for name in (
        "day",
        "extract",
        "fetch_rates",
        '"parse <map>"',
        '"to_usd <map>"',
        "summarize",
        "load",
    ):
        assert f"label={name}" in labels, name
    assert labels.count('label="parse <map>"') == 5  # one node per order line of the day
