"""``flow.run(resume=...)`` when the inputs of the resumed run's tasks are not what they
were: parameters given again or left out, literals edited, values that were None, lost
or never needed, and tasks or flows that are not the ones recorded.

Every test has its own SQLite store and checkpoints into its own directory; a task that
fails while ``tmp_path/broken`` exists makes the run to resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flowcore
from flowcore import Flow, Parameter, task
from flowcore.engine.results import LocalResult
from flowcore.exceptions import ResumeError
from flowcore.runs import RunStore
from flowcore.utilities.configuration import set_temporary_config
from tests.engine.test_run_recording import _configured


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    """A SQLite store of the test's own, as config ``runs.store``, with checkpointing on."""
    with set_temporary_config({"flows.checkpointing": True}):
        yield from _configured(str(tmp_path / "runs.db"))


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """While this file exists, the tasks that check it fail."""
    path = tmp_path / "broken"
    path.touch()
    return path


def _results(tmp_path: Path) -> LocalResult:
    return LocalResult(dir=str(tmp_path / "results"))


def _warnings(logs: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in logs.records if r.levelname == "WARNING"]


# -- parameters ------------------------------------------------------------------------------


def _parameter_flow(tmp_path: Path, broken: Path, seen: list[tuple[int, int, str]]) -> Flow:
    """report(double(n), n, label), report failing while ``broken`` exists."""

    @task
    def double(n: int) -> int:
        return 2 * n

    @task
    def report(doubled: int, n: int, label: str) -> None:
        if broken.exists():
            raise RuntimeError("not yet")
        seen.append((doubled, n, label))

    with Flow("parameters", result=_results(tmp_path)) as flow:
        n = Parameter("n")
        report(double(n), n, Parameter("label", default="plain"))
    return flow


def test_a_resumed_run_takes_the_recorded_parameters_unless_given_again(
    store: RunStore, tmp_path: Path, broken: Path, logs: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[int, int, str]] = []
    flow = _parameter_flow(tmp_path, broken, seen)
    first = flow.run(parameters={"n": 5, "label": "bold"})
    assert first.is_failed()
    broken.unlink()

    # none given: the required one and the one with a default are the recorded run's
    assert flow.run(resume=first.flow_run_id).is_successful()
    assert seen == [(10, 5, "bold")]
    assert not any("changed since" in m for m in _warnings(logs))
    store.flush()
    assert store.list_runs(limit=1)[0].parameters == {"n": "5", "label": "'bold'"}

    # one given again with another value: what it feeds runs again, with a warning
    broken.touch()
    second = flow.run(parameters={"n": 5, "label": "bold"})
    broken.unlink()
    logs.clear()
    assert flow.run(resume=second.flow_run_id, parameters={"n": 7}).is_successful()
    assert seen[-1] == (14, 7, "bold")
    (warning,) = [m for m in _warnings(logs) if "changed since" in m]
    assert "double-1 (parameter 'n' differs (was 5, now 7))" in warning
    assert "report-1 (parameter 'n' differs (was 5, now 7))" in warning

    # given again with the same value: nothing changed, double is restored
    broken.touch()
    third = flow.run(parameters={"n": 5})
    broken.unlink()
    logs.clear()
    state = flow.run(resume=third.flow_run_id, parameters={"n": 5})
    (double_task,) = flow.get_tasks(name="double")
    assert "Restored from run" in (state.result[double_task].message or "")
    assert seen[-1] == (10, 5, "plain") and not _warnings(logs)


def test_a_changed_parameter_that_tasks_read_from_the_context_is_warned_of(
    store: RunStore, tmp_path: Path, broken: Path, logs: pytest.LogCaptureFixture
) -> None:
    """A task reading ``flowcore.context.parameters`` is no edge of the Parameter, so its
    change cannot be followed: the resume says so, and how to run such tasks again."""

    @task
    def label() -> str:
        return f"n is {flowcore.context.parameters['n']}"

    @task
    def last(text: str) -> str:
        if broken.exists():
            raise RuntimeError("not yet")
        return text

    with Flow("context-parameter", result=_results(tmp_path)) as flow:
        flow.add_task(Parameter("n"))
        last(label())
    first = flow.run(parameters={"n": 1})
    broken.unlink()
    logs.clear()
    assert flow.run(resume=first.flow_run_id, parameters={"n": 2}).is_successful()
    (warning,) = [m for m in _warnings(logs) if "no task takes it" in m]
    assert "parameter 'n' differs (was 1, now 2)" in warning
    assert "flowcore.context.parameters" in warning and "rerun=[...]" in warning
    state = flow.run(
        resume=first.flow_run_id, parameters={"n": 2}, rerun=flow.get_tasks(name="label")
    )
    assert state.result[flow.get_tasks(name="last")[0]].result == "n is 2"


def test_a_recorded_parameter_the_flow_no_longer_has_is_dropped_with_a_warning(
    store: RunStore, tmp_path: Path, broken: Path, logs: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[int, int, str]] = []
    first = _parameter_flow(tmp_path, broken, seen).run(parameters={"n": 5})
    broken.unlink()

    @task
    def tripled(n: int) -> int:
        seen.append((3 * n, n, "tripled"))
        return 3 * n

    with Flow("parameters", result=_results(tmp_path)) as edited:
        tripled(Parameter("n"))
    assert edited.run(resume=first.flow_run_id).is_successful()
    assert seen == [(15, 5, "tripled")]
    assert (
        f"Flow 'parameters' no longer has the parameter(s) 'label' of the resumed run "
        f"{first.flow_run_id}: they are dropped"
    ) in _warnings(logs)


def test_a_recorded_parameter_that_cannot_be_read_back_must_be_given_again(
    store: RunStore, tmp_path: Path, broken: Path
) -> None:
    seen: list[tuple[int, int, str]] = []
    flow = _parameter_flow(tmp_path, broken, seen)
    first = flow.run(parameters={"n": 5, "label": object()})
    broken.unlink()
    with pytest.raises(ResumeError) as raised:
        flow.run(resume=first.flow_run_id)
    assert "its parameter(s) 'label' (recorded as <object object at" in str(raised.value)
    assert "parameters={'label': ...}) (flowcore: --param label=VALUE)" in str(raised.value)
    assert flow.run(resume=first.flow_run_id, parameters={"label": "new"}).is_successful()
    assert seen == [(10, 5, "new")]


# -- literals ------------------------------------------------------------------------------


def _squares_flow(tmp_path: Path, broken: Path, items: list[int], calls: list[int]) -> Flow:
    """total(square.map(items)), the square of 3 failing while ``broken`` exists."""

    @task
    def square(x: int) -> int:
        calls.append(x)
        if x == 3 and broken.exists():
            raise ValueError("three is broken")
        return x * x

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    with Flow("squares", result=_results(tmp_path)) as flow:
        total(square.map(items))
    return flow


@pytest.mark.parametrize(
    ("edited", "ran_again"),
    [([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]), ([10, 20, 3, 40], [3, 10, 20, 40]), ([1, 2, 3, 4], [3])],
)
def test_a_literal_mapped_over_that_was_edited_runs_the_map_again(
    store: RunStore,
    tmp_path: Path,
    broken: Path,
    logs: pytest.LogCaptureFixture,
    edited: list[int],
    ran_again: list[int],
) -> None:
    calls: list[int] = []
    first = _squares_flow(tmp_path, broken, [1, 2, 3, 4], calls).run()
    assert first.is_failed()
    broken.unlink()
    calls.clear()
    flow = _squares_flow(tmp_path, broken, edited, calls)
    state = flow.run(resume=first.flow_run_id)
    (total_task,) = flow.get_tasks(name="total")
    assert state.result[total_task].result == sum(x * x for x in edited)
    assert sorted(calls) == ran_again
    changed = [m for m in _warnings(logs) if "changed since" in m]
    if edited == [1, 2, 3, 4]:
        assert not changed
    else:
        assert "square-1 (constant inputs differ)" in changed[0]


# -- values that were None, lost, or never needed --------------------------------------------


def test_a_task_whose_value_was_none_is_restored_with_none(
    store: RunStore, tmp_path: Path, broken: Path
) -> None:
    calls: list[int] = []

    @task
    def maybe(x: int) -> int | None:
        calls.append(x)
        return x if x % 2 == 0 else None

    @task
    def summarize(values: list[int | None]) -> list[int | None]:
        if broken.exists():
            raise RuntimeError("not yet")
        return values

    with Flow("nones", result=_results(tmp_path)) as flow:
        summarize(maybe.map([0, 1, 2, 3]))
    first = flow.run()
    assert first.is_failed()
    broken.unlink()
    calls.clear()
    state = flow.run(resume=first.flow_run_id)
    assert state.is_successful() and calls == []
    (summarize_task,) = flow.get_tasks(name="summarize")
    assert state.result[summarize_task].result == [0, None, 2, None]
    store.flush()
    children = store.children(state.flow_run_id, "maybe-1")
    assert [c.result_location == "" for c in children] == [False, True, False, True]


def test_an_upstream_task_only_waited_for_need_not_be_checkpointed(
    store: RunStore, tmp_path: Path, broken: Path
) -> None:
    ran: list[str] = []

    @task(checkpoint=False)
    def setup() -> str:
        ran.append("setup")
        return "ready"

    @task
    def work() -> int:
        ran.append("work")
        if broken.exists():
            raise RuntimeError("not yet")
        return 1

    with Flow("ordering", result=_results(tmp_path)) as flow:
        work(upstream_tasks=[setup])
    first = flow.run()
    assert first.is_failed()
    broken.unlink()
    assert flow.run(resume=first.flow_run_id).is_successful()
    assert ran == ["setup", "work", "work"]


def _failed_after_checkpointing(tmp_path: Path, broken: Path) -> tuple[Flow, str]:
    """a -> b, b failing while ``broken`` exists: the flow and its failed run's id."""

    @task
    def a() -> int:
        return 1

    @task
    def b(x: int) -> int:
        if broken.exists():
            raise RuntimeError("not yet")
        return x + 1

    with Flow("lost", result=_results(tmp_path)) as flow:
        b(a())
    first = flow.run()
    assert first.is_failed()
    broken.unlink()
    return flow, first.flow_run_id


def test_a_checkpoint_deleted_since_is_a_resume_error_naming_the_task_and_the_fix(
    store: RunStore, tmp_path: Path, broken: Path
) -> None:
    flow, run_id = _failed_after_checkpointing(tmp_path, broken)
    (written,) = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    written.unlink()
    with pytest.raises(ResumeError) as raised:
        flow.run(resume=run_id)
    assert str(raised.value) == (
        f"Cannot resume run {run_id}: nothing is stored any more where these tasks' values "
        f"were checkpointed, and tasks that run again need them: 'a' ({written}). Run them "
        "again, with rerun=[*flow.get_tasks(name='a')] (flowcore run: --rerun a), or put the "
        "files back."
    )
    assert flow.run(resume=run_id, rerun=[*flow.get_tasks(name="a")]).is_successful()


def test_lost_checkpoints_are_named_at_once_with_those_their_rerun_would_need(
    store: RunStore, tmp_path: Path, broken: Path
) -> None:
    """A lost value's task would run again, and need its own inputs: if those are lost
    too, the one error names both, so the rerun it suggests works the first time."""

    @task
    def a() -> int:
        return 1

    @task
    def b(x: int) -> int:
        return x + 1

    @task
    def c(x: int) -> int:
        if broken.exists():
            raise RuntimeError("not yet")
        return x + 1

    with Flow("lost-twice", result=_results(tmp_path)) as flow:
        c(b(a()))
    run_id = flow.run().flow_run_id
    broken.unlink()
    for written in [p for p in (tmp_path / "results").rglob("*") if p.is_file()]:
        written.unlink()
    with pytest.raises(ResumeError, match=r"'a' \(.*\); 'b' \(") as raised:
        flow.run(resume=run_id)
    assert "rerun=[*flow.get_tasks(name='a'), *flow.get_tasks(name='b')]" in str(raised.value)
    rerun = [*flow.get_tasks(name="a"), *flow.get_tasks(name="b")]
    assert flow.run(resume=run_id, rerun=rerun).is_successful()


def test_a_checkpoint_that_cannot_be_read_is_a_resume_error_naming_the_task_with_its_cause(
    store: RunStore, tmp_path: Path, broken: Path
) -> None:
    flow, run_id = _failed_after_checkpointing(tmp_path, broken)
    (written,) = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    written.write_bytes(b"not a pickle")
    with pytest.raises(ResumeError) as raised:
        flow.run(resume=run_id)
    assert f"the value of task 'a', checkpointed at {written}, cannot be read: " in str(
        raised.value
    )
    assert str(raised.value).endswith(
        "Fix the storage, or run the task again with rerun=[*flow.get_tasks(name='a')] "
        "(flowcore run: --rerun a)"
    )
    assert "invalid load key" in str(raised.value.__cause__)  # (the unpickler's error)


# -- tasks and flows that are not the ones recorded ------------------------------------------


def test_rerun_with_the_task_function_says_to_pass_the_flows_copy(
    store: RunStore, tmp_path: Path, broken: Path
) -> None:
    flow, run_id = _failed_after_checkpointing(tmp_path, broken)
    (b_copy,) = flow.get_tasks(name="b")

    @task
    def b(x: int) -> int:  # a @task function of the same name, not the flow's copy
        return x

    with pytest.raises(ResumeError) as raised:
        flow.run(resume=run_id, rerun=[b])
    assert str(raised.value) == (
        "rerun= names tasks that are not in flow 'lost': [<Task: b>]; pass the tasks the calls "
        "in the flow returned (the flow's copies, `b = my_task(...)` inside `with Flow(...)`), "
        "not the @task functions, or find them with flow.get_tasks(name='b')"
    )
    assert flow.run(resume=run_id, rerun=[b_copy]).is_successful()


def test_resuming_another_flows_run_of_the_same_name_warns_of_the_tasks_it_does_not_know(
    store: RunStore, tmp_path: Path, broken: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    _squares_flow(tmp_path, broken, [1, 2, 3, 4], calls).run()
    broken.unlink()

    @task
    def other() -> int:
        return 1

    with Flow("squares") as another:
        other()
    assert another.run(resume="last").is_successful()
    (warning,) = [m for m in _warnings(logs) if "not in flow" in m]
    assert warning.startswith("2 task(s) recorded in run ")
    assert "are not in flow 'squares', so their records are not used: square-1, total-1 " in (
        warning
    )  # (and not the literal's own task, [1, 2, 3, 4]-1)
