"""The TaskRunner's fused path (``TaskRunner._fused``) gives what the full pipeline gives.

A run the fused path takes (a plain ``Pending`` task, no handlers, no cache plan, the
default trigger, successful upstreams) must end in the same states, with the same
messages and results, the same log lines and the same run-store records as the step by
step pipeline. ``Unfused`` is a TaskRunner subclass, which the fused path never takes, so
every scenario below runs both ways and the outcomes are compared.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import flowcore
from flowcore import Flow, Parameter, task
from flowcore.cache_policies import INPUTS
from flowcore.engine import signals
from flowcore.engine.cache_validators import all_inputs
from flowcore.engine.results import LocalResult
from flowcore.engine.state import State
from flowcore.engine.task_runner import TaskRunner
from flowcore.executors import LocalDaskExecutor, LocalExecutor
from flowcore.runs import open_store
from flowcore.utilities.configuration import set_temporary_config


class Unfused(TaskRunner):
    """A TaskRunner that always runs the full pipeline (the fused path is TaskRunner's own)."""


@pytest.fixture
def fused_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the tasks whose runs took the fused path."""
    taken: list[str] = []
    original = TaskRunner._fused

    def counting(self: TaskRunner, state: State, upstream_states: Any) -> State:
        taken.append(self.task.name)
        return original(self, state, upstream_states)

    monkeypatch.setattr(TaskRunner, "_fused", counting)
    yield taken


def _outcome(
    build: Callable[[], Flow],
    runner: type,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    runs: int = 1,
    **run_kwargs: Any,
) -> dict[str, Any]:
    """Run the flow with ``runner`` as its TaskRunner (``runs`` times in a row, with caches
    of its own, ``run_kwargs`` given to ``flow.run``); everything observable about the last
    run."""
    flow = build()
    db = tmp_path / f"{runner.__name__}.db"
    path = (
        f"{__name__}.{runner.__name__}"
        if runner is Unfused
        else "flowcore.engine.task_runner.TaskRunner"
    )
    cache_store = str(tmp_path / f"{runner.__name__}-cache")
    with (
        set_temporary_config({"engine.task_runner.default_class": path, "runs.store": str(db)}),
        flowcore.context(caches={}),
    ):
        for _ in range(runs - 1):
            flow.run(cache_store=cache_store, **run_kwargs)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="flowcore"):
            state = flow.run(cache_store=cache_store, **run_kwargs)
    store = open_store(str(db))
    try:
        store.flush()
        transitions = {
            (t.task_slug, t.map_index): [
                (x.state, x.message)
                for x in store.transitions(state.flow_run_id, t.task_slug, t.map_index)
            ]
            for t in store.task_runs(state.flow_run_id)
        }
        task_runs = [
            (t.task_slug, t.map_index, t.state, t.message, t.run_count)
            + (t.result_location and Path(t.result_location).name,)
            + (t.started is not None, t.ended is not None)
            for t in store.task_runs(state.flow_run_id)
        ]
    finally:
        store.close()
    outcome = {
        "flow": (type(state).__name__, state.message),
        "tasks": {
            flow.slugs[t]: (type(s).__name__, str(s.message), repr(s.result), s.context.get("tags"))
            for t, s in state.result.items()
        },
        "logs": [
            (r.name, r.levelname, r.getMessage())
            for r in caplog.records
            if "Flow run" not in r.getMessage()
        ],
        "transitions": transitions,
        "task_runs": task_runs,
    }
    return {key: _without_ids(value) for key, value in outcome.items()}


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _without_ids(value: Any) -> Any:
    """``value`` with every run id in its strings replaced by ``<id>`` (runs differ in them)."""
    if isinstance(value, str):
        return _UUID.sub("<id>", value)
    if isinstance(value, dict):
        return {_without_ids(k): _without_ids(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_without_ids(v) for v in value)
    return value


def _chain() -> Flow:
    @task(tags=["a", "b"])
    def inc(x: int) -> int:
        return x + 1

    with Flow("chain") as flow:
        inc(inc(inc(Parameter("x", default=1))))
    return flow


def _failure_and_downstream() -> Flow:
    @task
    def boom(x: int) -> int:
        raise ValueError(f"bad {x}")

    @task
    def after(x: int) -> int:
        return x

    with Flow("failure") as flow:
        after(boom(1))
    return flow


def _retries() -> Flow:
    calls = {"n": 0}

    @task(max_retries=2, retry_delay=timedelta(seconds=0))
    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError("not yet")
        return calls["n"]

    with Flow("retries") as flow:
        flaky()
    return flow


def _signals() -> Flow:
    @task
    def skip() -> None:
        raise signals.SKIP("skipping on purpose")

    @task
    def fail() -> None:
        raise signals.FAIL("failing on purpose")

    @task
    def succeed() -> None:
        raise signals.SUCCESS("done early", result=7)

    @task
    def loop() -> int:
        count = flowcore.context.get("task_loop_count", 1)
        if count < 3:
            raise signals.LOOP(result=count)
        return count

    retried = {"n": 0}

    @task
    def retry() -> int:
        retried["n"] += 1
        if retried["n"] == 1:
            raise signals.RETRY("again later")
        return retried["n"]

    @task
    def downstream(x: Any) -> Any:
        return x

    with Flow("signals") as flow:
        downstream(skip())
        fail()
        downstream(succeed())
        downstream(loop())
        retry()
    return flow


def _mapped_and_checkpointed(tmp: Path) -> Callable[[], Flow]:
    def build() -> Flow:
        @task(
            checkpoint=True,
            result=LocalResult(dir=str(tmp), location="{task_name}-{map_index}.txt"),
        )
        def double(x: int) -> int:
            if x == 3:
                raise ValueError("three")
            return 2 * x

        @task(log_stdout=True)
        def total(xs: list[int]) -> int:
            print(f"adding {len(xs)}")
            return sum(xs)

        with Flow("mapped") as flow:
            total(double.map([1, 2, 4]))
            double.map([3])
        return flow

    return build


@pytest.mark.parametrize("scenario", ["chain", "failure", "retries", "signals", "mapped"])
def test_the_fused_path_matches_the_pipeline(
    scenario: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fused_runs: list[str],
) -> None:
    builds = {
        "chain": _chain,
        "failure": _failure_and_downstream,
        "retries": _retries,
        "signals": _signals,
    }
    with set_temporary_config({"flows.checkpointing": True}):
        if scenario == "mapped":
            fused = _outcome(
                _mapped_and_checkpointed(tmp_path / "fused"), TaskRunner, tmp_path, caplog
            )
            taken = len(fused_runs)
            pipeline = _outcome(
                _mapped_and_checkpointed(tmp_path / "pipeline"), Unfused, tmp_path, caplog
            )
            assert sorted(p.name for p in (tmp_path / "fused").iterdir()) == sorted(
                p.name for p in (tmp_path / "pipeline").iterdir()
            )
        else:
            fused = _outcome(builds[scenario], TaskRunner, tmp_path, caplog)
            taken = len(fused_runs)
            pipeline = _outcome(builds[scenario], Unfused, tmp_path, caplog)
    assert taken > 0, "the fused path was never taken"
    assert len(fused_runs) == taken, "the subclass must run the full pipeline"
    assert fused["flow"] == pipeline["flow"]
    assert fused["tasks"] == pipeline["tasks"]
    assert fused["logs"] == pipeline["logs"]
    assert fused["transitions"] == pipeline["transitions"]
    assert fused["task_runs"] == pipeline["task_runs"]


def test_a_task_with_a_handler_a_trigger_or_a_failed_upstream_takes_the_pipeline(
    fused_runs: list[str],
) -> None:
    seen: list[tuple[str, str]] = []

    def handler(task_: Any, old: State, new: State) -> None:
        seen.append((type(old).__name__, type(new).__name__))

    @task
    def plain() -> int:
        return 1

    @task(state_handlers=[handler])
    def handled(x: int) -> int:
        return x

    @task
    def boom() -> None:
        raise ValueError("no")

    @task(trigger=flowcore.triggers.always_run)
    def always(x: Any) -> int:
        return 2

    @task
    def after_failure(x: Any) -> int:
        return 3

    with Flow("mixed") as flow:
        handled(plain())
        failed = boom()
        always(failed)
        after_failure(failed)
    state = flow.run()
    assert sorted(fused_runs) == ["boom", "plain"]
    assert seen == [("Pending", "Running"), ("Running", "Success")]
    assert type(state.result[flow.get_tasks(name="after_failure")[0]]).__name__ == "TriggerFailed"
    assert state.result[flow.get_tasks(name="always")[0]].result == 2


def _cached(tmp: Path) -> Callable[[], Flow]:
    """``cache_for``, a target and a cache policy: the second run of the flow is all hits,
    except the inputs that changed."""
    calls = {"n": 0}

    def build() -> Flow:
        @task(cache_for=timedelta(hours=1))
        def kept(x: int) -> int:
            return x + 1

        @task(checkpoint=True, result=LocalResult(dir=str(tmp)), target="{task_name}-{x}.pkl")
        def targeted(x: int) -> int:
            return x * 2

        @task(cache_policy=INPUTS, result=LocalResult(dir=str(tmp)))
        def keyed(x: int) -> int:
            return x * 3

        @task
        def changing() -> int:
            calls["n"] += 1
            return calls["n"]

        @task(cache_for=timedelta(hours=1), cache_validator=all_inputs)
        def by_inputs(x: int) -> int:
            return x

        with Flow("cached") as flow:
            keyed(targeted(kept(1)))
            by_inputs(changing())
        return flow

    return build


def test_the_fused_path_matches_the_pipeline_on_cache_hits_and_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fused_runs: list[str]
) -> None:
    with set_temporary_config({"flows.checkpointing": True}):
        fused = _outcome(_cached(tmp_path / "fused"), TaskRunner, tmp_path, caplog, runs=2)
        taken = len(fused_runs)
        pipeline = _outcome(_cached(tmp_path / "pipeline"), Unfused, tmp_path, caplog, runs=2)
    assert taken > 0 and len(fused_runs) == taken
    assert {state for state, *_ in fused["tasks"].values()} >= {"Cached", "Success"}
    for key in ("flow", "tasks", "logs", "transitions", "task_runs"):
        assert fused[key] == pipeline[key], key


def _batched(tmp: Path) -> Callable[[], Flow]:
    """Mapped children of every kind, for batches: plain, failing, retried, signalled,
    looping, reading their context, checkpointed at a location of their own, and a map
    over them (whose children see failed and skipped upstreams)."""

    def build() -> Flow:
        attempts: dict[int, int] = {}

        @task(
            checkpoint=True,
            result=LocalResult(dir=str(tmp), location="{task_name}-{map_index}.txt"),
            max_retries=1,
            retry_delay=timedelta(seconds=0),
            tags=["t"],
        )
        def work(x: int) -> Any:
            attempts[x] = attempts.get(x, 0) + 1
            if x == 3:
                raise ValueError("three")
            if x == 4 and attempts[x] == 1:
                raise RuntimeError("once")
            if x == 5:
                raise signals.SKIP("skip five")
            if x == 6:
                raise signals.SUCCESS("early", result=60)
            if x == 7 and flowcore.context.get("task_loop_count", 1) < 3:
                raise signals.LOOP(result=flowcore.context.get("task_loop_count", 1))
            context = flowcore.context
            return (
                f"{x} {context.map_index} {context.task_full_name} {context.task_run_count} "
                f"{context.logger.name} {context.task_name} {sorted(context.task_tags)}"
            )

        @task
        def after(y: Any) -> Any:
            return y

        with Flow("batched") as flow:
            after.map(work.map(list(range(12))))
        return flow

    return build


@pytest.mark.parametrize("batched", [True, False], ids=["batches", "in-turn"])
def test_a_shared_runner_for_children_matches_a_runner_per_child(
    batched: bool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches of children (``engine/batches.py``), and children an executor runs in turn
    (``LocalExecutor``), run the children that start Pending on one TaskRunner
    (``prepare_children`` / ``run_child``); a TaskRunner subclass gets a runner per child,
    so the two are compared."""
    shared_children: list[int] = []
    original = TaskRunner.run_child

    def counting(self: TaskRunner, index: int, upstream_states: Any) -> State:
        shared_children.append(index)
        return original(self, index, upstream_states)

    monkeypatch.setattr(TaskRunner, "run_child", counting)
    run_kwargs: dict[str, Any] = (
        {"executor": LocalDaskExecutor("threads", num_workers=1), "map_batch_size": 5}
        if batched
        else {"executor": LocalExecutor()}
    )
    with set_temporary_config({"flows.checkpointing": True}):
        shared = _outcome(_batched(tmp_path / "shared"), TaskRunner, tmp_path, caplog, **run_kwargs)
        taken = len(shared_children)
        apart = _outcome(_batched(tmp_path / "apart"), Unfused, tmp_path, caplog, **run_kwargs)
    assert taken >= 24, "each first run of a child of both maps takes the shared runner"
    assert len(shared_children) == taken, "a subclass must get a runner per child"
    files = sorted(p.name for p in (tmp_path / "shared").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "apart").iterdir())
    assert "work-0.txt" in files and "work-11.txt" in files
    assert (tmp_path / "shared" / "work-2.txt").read_bytes() == (
        tmp_path / "apart" / "work-2.txt"
    ).read_bytes()
    (work,) = [value for slug, value in shared["tasks"].items() if slug.startswith("work")]
    assert "2 2 work[2] 1 flowcore.work[2] work ['t']" in work[2]
    for key in ("flow", "tasks", "logs", "transitions", "task_runs"):
        assert shared[key] == apart[key], key


def test_runner_state_handlers_get_a_runner_per_child() -> None:
    """A runner state handler is given the runner, and may keep it: with one, no two
    children share a runner (``TaskRunner.prepare_children`` declines)."""
    kept: list[TaskRunner] = []

    def keep(runner: TaskRunner, old: State, new: State) -> None:
        kept.append(runner)

    @task
    def double(x: int) -> int:
        return 2 * x

    with Flow("handled-children") as flow:
        double.map(list(range(6)))
    state = flow.run(task_runner_state_handlers=[keep])
    assert state.is_successful()
    children = [r for r in kept if r.context.get("map_index") is not None]
    assert len({id(r) for r in children}) == 6
    assert sorted({r.context["map_index"] for r in children}) == list(range(6))
