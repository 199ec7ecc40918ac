"""Paused and Resume locally (reference 4, 12.4).

Prefect 1.4.1 prompts on stdin for every Paused task and, without a TTY, dies with
EOFError (or re-prompts forever on a non-"y" answer). flowcore prompts only on a
terminal and otherwise returns the Running flow state with a warning saying how to resume.
"""

from __future__ import annotations

import io
import sys
from datetime import timedelta
from typing import Any

import pendulum
import pytest

from flowcore import Flow, Task, context, task
from flowcore.engine import signals
from flowcore.engine.state import Mapped, Paused, Pending, Resume, Retrying, State, Success
from flowcore.engine.task_runner import TaskRunner
from flowcore.triggers import manual_only
from flowcore.utilities.tasks import pause_task


class FakeTerminal(io.StringIO):
    """A stdin that says it is a terminal and answers the prompts."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def gated_flow(runs: list[Any]) -> tuple[Flow, Task, Task, Task]:
    @task
    def up() -> int:
        return 1

    @task(trigger=manual_only)
    def gate(x: int) -> int:
        runs.append(("gate", context.get("resume")))
        return x + 1

    @task
    def down(x: int) -> int:
        runs.append(("down", x))
        return x * 2

    with Flow("f") as flow:
        u = up()
        g = gate(u)
        d = down(g)
    return flow, u, g, d


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


@pytest.mark.usefixtures("no_tty")
def test_manual_only_without_tty_returns_paused(logs: pytest.LogCaptureFixture) -> None:
    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)
    state = run(flow)
    assert state.is_running()
    assert type(state.result[g]) is Paused
    assert state.result[g].start_time is None
    assert state.result[g].message == 'Trigger function is "manual_only"'
    assert type(state.result[d]) is Pending
    assert state.result[u].result == 1
    assert runs == []
    warning = [r for r in logs.records if r.levelname == "WARNING"]
    assert len(warning) == 1
    assert "['gate'] are Paused" in warning[0].getMessage()
    assert "Resume()" in warning[0].getMessage()


@pytest.mark.usefixtures("no_tty")
def test_resume_through_task_states() -> None:
    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)
    first = run(flow)
    second = run(flow, task_states={**first.result, g: Resume()})
    assert second.message == "All reference tasks succeeded."
    assert second.result[g].result == 2
    assert second.result[d].result == 4
    assert runs == [("gate", True), ("down", 2)]


@pytest.mark.usefixtures("no_tty")
def test_paused_state_carries_its_inputs() -> None:
    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)
    paused = run(flow).result[g]
    assert {k: r.value for k, r in (paused.cached_inputs or {}).items()} == {"x": 1}
    # in a new run with nothing but the pause's inputs, the resumed task uses them
    resumed = TaskRunner(g).run(state=Resume(cached_inputs=paused.cached_inputs))
    assert resumed.result == 2


def test_terminal_answer_y_resumes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeTerminal("y\n"))
    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)
    state = run(flow)
    assert state.is_successful()
    assert runs == [("gate", True), ("down", 2)]
    assert "is currently Paused; enter 'y' to resume" in capsys.readouterr().out


def test_terminal_other_answer_returns_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", FakeTerminal("n\n"))
    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)
    state = run(flow)
    assert state.is_running()
    assert type(state.result[g]) is Paused
    assert runs == []


def mapped_gate_flow(runs: list[Any]) -> tuple[Flow, Task, Task]:
    @task(trigger=manual_only)
    def gate(x: int) -> int:
        runs.append(x)
        return x * 10

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("pm") as flow:
        g = gate.map([1, 2])
        t = total(g)
    return flow, g, t


@pytest.mark.usefixtures("no_tty")
def test_paused_mapped_children_are_named_with_how_to_resume_them(
    logs: pytest.LogCaptureFixture,
) -> None:
    runs: list[Any] = []
    flow, g, t = mapped_gate_flow(runs)
    first = run(flow)
    assert [type(s) for s in first.result[g].map_states] == [Paused, Paused]
    (warning,) = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert "task(s) ['gate[0]', 'gate[1]'] are Paused" in warning
    assert "give the task Mapped(map_states=[...]) with Resume() in their places" in warning
    resumed = run(flow, task_states={**first.result, g: Mapped(map_states=[Resume(), Resume()])})
    assert resumed.is_successful() and resumed.result[t].result == 30
    assert runs == [1, 2]


def test_terminal_answers_resume_paused_mapped_children(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the first child approved, the second not, and not on the pass after either
    monkeypatch.setattr(sys, "stdin", FakeTerminal("y\nn\nn\n"))
    runs: list[Any] = []
    flow, g, t = mapped_gate_flow(runs)
    state = run(flow)
    assert runs == [1]
    assert [type(s) for s in state.result[g].map_states] == [Success, Paused]
    out = capsys.readouterr().out
    assert "<Task: gate[0]> is currently Paused; enter 'y' to resume" in out
    assert "<Task: gate[1]> is currently Paused; enter 'y' to resume" in out


@pytest.mark.usefixtures("no_tty")
def test_a_task_due_behind_a_paused_one_does_not_make_the_run_spin(
    logs: pytest.LogCaptureFixture,
) -> None:
    # a Retrying task whose time has come, downstream of a paused one, cannot run: the run
    # returns with the warning after a pass that changed nothing (it looped without end)
    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)
    due = Retrying(start_time=pendulum.now("UTC"), run_count=1)
    state = run(flow, task_states={d: due})
    assert state.is_running()
    assert type(state.result[g]) is Paused and state.result[d] is due
    passes = [m for m in logs.messages if m.startswith("Beginning Flow run")]
    assert len(passes) == 2
    assert any("cannot continue: task(s) ['gate'] are Paused" in m for m in logs.messages)
    assert runs == []


@pytest.mark.timeout(120)  # (without the fix the run never ends)
@pytest.mark.usefixtures("no_tty")
def test_a_task_due_behind_a_paused_one_does_not_spin_on_a_process_pool(
    logs: pytest.LogCaptureFixture,
) -> None:
    # states that come back from worker processes are new objects each pass: the passes
    # are told apart by their states' values, not their identity
    from flowcore.executors import LocalDaskExecutor

    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)
    due = Retrying(start_time=pendulum.now("UTC"), run_count=1)
    state = run(flow, task_states={d: due}, executor=LocalDaskExecutor("processes", num_workers=1))
    assert state.is_running() and type(state.result[g]) is Paused
    assert len([m for m in logs.messages if m.startswith("Beginning Flow run")]) <= 3


@pytest.mark.timeout(120)  # (without the fix the run never ends)
@pytest.mark.usefixtures("no_tty")
def test_a_task_due_behind_a_paused_one_does_not_spin_beside_a_map_in_batches(
    logs: pytest.LogCaptureFixture,
) -> None:
    # a map in batches holds its children compactly; they are compared by their summary
    # (counting them as changed every pass made this run spin again)
    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)

    @task
    def square(x: int) -> int:
        return x * x

    with flow:
        square.map(list(range(10)))
    due = Retrying(start_time=pendulum.now("UTC"), run_count=1)
    state = run(flow, task_states={d: due}, map_batch_size=4)
    assert state.is_running() and type(state.result[g]) is Paused
    assert len([m for m in logs.messages if m.startswith("Beginning Flow run")]) <= 3


def test_a_batched_map_retrying_children_on_the_local_executor_finishes(tmp_path: Any) -> None:
    # its children are held compactly: the parent is the same object after a pass in which
    # children moved on, which must not count as a pass that changed nothing
    marker = tmp_path / "failed-once"

    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky(x: int) -> int:
        if x == 3 and not marker.exists():
            marker.touch()
            raise ValueError("once")
        return x

    with Flow("batched") as flow:
        m = flaky.map(list(range(10)))
    state = run(flow, map_batch_size=5)
    assert state.is_successful(), state
    assert state.result[m].result == list(range(10))


@pytest.mark.usefixtures("no_tty")
def test_pause_task_pauses_and_reruns_the_whole_body_on_resume() -> None:
    runs: list[Any] = []

    @task
    def t() -> str:
        runs.append(("before", context.get("resume")))
        pause_task("waiting for approval")
        runs.append(("after", context.get("resume")))
        return "approved"

    with Flow("f") as flow:
        p = t()
    first = run(flow)
    paused = first.result[p]
    assert type(paused) is Paused
    assert paused.message == "waiting for approval"
    assert paused.start_time is None
    second = run(flow, task_states={p: Resume()})
    assert second.result[p].result == "approved"
    assert runs == [("before", None), ("before", True), ("after", True)]


def test_pause_task_default_message() -> None:
    @task
    def t() -> None:
        pause_task()

    state = TaskRunner(t).run()
    assert type(state) is Paused
    assert state.message == "Pause signal raised during task execution."


@pytest.mark.usefixtures("no_tty")
def test_pause_task_with_duration_resumes_by_itself() -> None:
    runs: list[Any] = []

    @task
    def t() -> str:
        runs.append(context.get("resume"))
        pause_task(duration=timedelta(seconds=0.1))
        return "later"

    with Flow("f") as flow:
        p = t()
    state = run(flow)
    assert state.is_successful()
    assert state.result[p].result == "later"
    assert runs == [None, True]


def test_pause_with_duration_has_a_start_time() -> None:
    @task
    def t() -> None:
        pause_task(duration=timedelta(hours=1))

    state = TaskRunner(t).run()
    assert type(state) is Paused
    assert state.start_time is not None


def test_pause_signal_in_task() -> None:
    @task
    def t(x: int) -> None:
        raise signals.PAUSE("stop here")

    from flowcore.core.edge import Edge

    state = TaskRunner(t).run(upstream_states={Edge(Task(), t, key="x"): Success(result=3)})
    assert type(state) is Paused
    assert state.message == "stop here"
    assert {k: r.value for k, r in (state.cached_inputs or {}).items()} == {"x": 3}


def test_paused_state_given_waits() -> None:
    calls: list[int] = []

    @task
    def t() -> None:
        calls.append(1)

    paused = Paused()
    assert TaskRunner(t).run(state=paused) is paused
    assert calls == []


def test_elapsed_pause_resumes() -> None:
    import pendulum

    seen: list[Any] = []

    @task
    def t() -> str:
        seen.append(context.get("resume"))
        pause_task()
        return "through"

    state = TaskRunner(t).run(state=Paused(start_time=pendulum.now("UTC").subtract(seconds=1)))
    assert state.result == "through"
    assert seen == [True]


@pytest.mark.usefixtures("no_tty")
def test_paused_mapped_children_return_without_prompt() -> None:
    @task(trigger=manual_only)
    def gate(x: int) -> int:
        return x

    with Flow("f") as flow:
        m = gate.map([1, 2])
    state = run(flow)
    assert state.is_running()
    assert [type(s) for s in state.result[m].map_states] == [Paused, Paused]


def test_no_stdin_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    runs: list[Any] = []
    flow, u, g, d = gated_flow(runs)
    assert type(run(flow).result[g]) is Paused
