"""Pre-flight checks (``flowcore/core/_preflight.py``): template keys, mapped templates,
targets without checkpointing and dry pickling, found by ``flow.validate()`` and by
``flow.run()`` before any task runs."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, Task, context, task, unmapped
from flowcore.core._preflight import RUN_KEYS, ships_to_processes, template_fields
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Failed, Pending, Success
from flowcore.exceptions import DaskTaskError, TemplateKeyError
from flowcore.executors import DaskExecutor, LocalDaskExecutor, LocalExecutor

CHECKPOINTING = {"checkpointing": True}


def _marking(marker: Path) -> Any:
    """A task that leaves a file behind when it runs (seen from any process)."""

    @task
    def produce(x: int) -> int:
        with open(marker, "a") as fh:
            fh.write(f"{x}\n")
        return x * 10

    return produce


@task
def save(x: int) -> int:
    return x


@task
def pair(x: int, y: int) -> int:
    return x + y


def _error_logs(logs: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]


# -- unknown template keys --------------------------------------------------------------------


def _unknown_key_flow(tmp_path: Path, marker: Path) -> tuple[Flow, Task]:
    with Flow("bad-key") as flow:
        upstream = _marking(marker)(1)
        out = save(
            upstream, task_args={"result": LocalResult(dir=tmp_path), "target": "{dya}/out.pkl"}
        )
    return flow, out


def test_an_unknown_key_fails_the_run_before_any_task_runs(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "ran.txt"
    flow, out = _unknown_key_flow(tmp_path, marker)
    state = flow.run(context=CHECKPOINTING)
    assert not marker.exists()
    assert type(state) is Failed and state.message.startswith(
        "Pre-flight check failed, no task ran: "
    )
    message = state.result[out].message
    assert isinstance(state.result[out], Failed) and isinstance(
        state.result[out].result, TemplateKeyError
    )
    assert message.startswith(
        "Task 'save': target template '{dya}/out.pkl' uses unknown key 'dya'; known keys: "
    )
    assert all(key in message for key in ("today", "map_index", "flow_run_id", "x"))
    assert all(isinstance(s, Pending) for t, s in state.result.items() if t is not out)
    assert any("unknown key 'dya'" in m for m in _error_logs(logs))


def test_an_unknown_key_is_raised_under_raise_on_exception(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    flow, _ = _unknown_key_flow(tmp_path, marker)
    with pytest.raises(
        TemplateKeyError,
        match="Task 'save': target template '{dya}/out.pkl' uses unknown key 'dya'",
    ):
        flow.run(context={**CHECKPOINTING, "raise_on_exception": True})
    assert not marker.exists()


def test_validate_raises_for_an_unknown_key(tmp_path: Path) -> None:
    flow, _ = _unknown_key_flow(tmp_path, tmp_path / "ran.txt")
    with pytest.raises(ValueError, match=r"uses unknown key 'dya'; known keys: .*today") as info:
        flow.validate()
    assert isinstance(info.value, TemplateKeyError)


def test_an_unknown_key_in_a_result_location_is_found_too(tmp_path: Path) -> None:
    with Flow(
        "bad-location", result=LocalResult(dir=tmp_path, location="{tody}/{task_name}.pkl")
    ) as flow:
        save(1)
    with pytest.raises(
        TemplateKeyError,
        match=r"result location \(the flow's result=\) template .* unknown key 'tody'",
    ):
        flow.validate()
    own = LocalResult(dir=tmp_path, location="{flow_name}/{nope}.pkl")
    with Flow("bad-own-location") as flow:
        save(1, task_args={"result": own})
    with pytest.raises(
        TemplateKeyError, match=r"Task 'save': result location template .* unknown key 'nope'"
    ):
        flow.validate()


def test_known_keys_pass(tmp_path: Path) -> None:
    template = (
        "{date:%Y}/{today}/{yesterday_nodash}/{flow_name}/{flow_run_id}/{task_name}/"
        "{task_run_count}/{p}/{parameters[p]}/{x}-{y}-{map_index}.pkl"
    )
    with Flow("known") as flow:
        p = Parameter("p", default=5)
        out = pair(x=p, y=2, task_args={"result": LocalResult(dir=tmp_path), "target": template})
    flow.validate()
    state = flow.run(context=CHECKPOINTING)
    assert state.is_successful() and state.result[out].result == 7
    assert len(list(tmp_path.rglob("5/5/5-2-None.pkl"))) == 1


def test_keys_of_the_run_context_and_task_contexts_count_at_run_time(tmp_path: Path) -> None:
    with Flow("run-keys") as flow:
        out = save(
            1, task_args={"result": LocalResult(dir=tmp_path), "target": "{region}/{shard}.pkl"}
        )
    with pytest.raises(TemplateKeyError, match="unknown key 'region'"):
        flow.validate()
    with context(region="eu", shard=0):
        flow.validate()
    state = flow.run(context={**CHECKPOINTING, "region": "eu"}, task_contexts={out: {"shard": 3}})
    assert state.is_successful() and (tmp_path / "eu" / "3.pkl").exists()
    failed = flow.run(context={**CHECKPOINTING, "region": "eu"})
    assert "unknown key 'shard'" in failed.result[out].message


def test_an_unbound_argument_default_is_not_a_key_and_the_message_says_why(tmp_path: Path) -> None:
    @task
    def scaled(x: int, factor: int = 2) -> int:
        return x * factor

    with Flow("default") as flow:
        scaled(1, task_args={"result": LocalResult(dir=tmp_path), "target": "{factor}.pkl"})
    with pytest.raises(
        TemplateKeyError, match="'factor' is an argument of 'scaled' that is not bound"
    ):
        flow.validate()
    with Flow("bound") as flow:
        scaled(
            1, factor=3, task_args={"result": LocalResult(dir=tmp_path), "target": "{factor}.pkl"}
        )
    flow.validate()


def test_callable_targets_are_not_checked(tmp_path: Path) -> None:
    with Flow("callable") as flow:
        save(
            1,
            task_args={
                "result": LocalResult(dir=tmp_path),
                "target": lambda **kw: f"{kw['x']}.pkl",
            },
        )
    flow.validate()
    assert flow.run(context=CHECKPOINTING).is_successful()


def test_a_malformed_template_is_an_error(tmp_path: Path) -> None:
    with Flow("malformed") as flow:
        save(1, task_args={"result": LocalResult(dir=tmp_path), "target": "{x.pkl"})
    with pytest.raises(
        ValueError, match=r"Task 'save': target template '\{x.pkl' cannot be parsed"
    ):
        flow.validate()


def test_run_keys_are_exactly_what_a_task_run_hands_its_templates(tmp_path: Path) -> None:
    seen: list[set[str]] = []

    def record(**kwargs: Any) -> str:
        seen.append(set(kwargs))
        return f"{kwargs['task_full_name']}.pkl"

    with Flow("drift", result=LocalResult(dir=tmp_path)) as flow:
        save.map([1, 2], task_args={"target": record})
        save(3, task_args={"target": record})
    assert flow.run(context=CHECKPOINTING).is_successful()
    assert len(seen) >= 3  # looked up, then written
    for keys in seen:
        assert RUN_KEYS <= keys, RUN_KEYS - keys
        assert keys - RUN_KEYS == {"x"}


def test_template_fields() -> None:
    assert template_fields("{a}/{b[0]}/{c.d}/{e:{f}}/{{g}}/{a}") == ("a", "b", "c", "e", "f")
    assert template_fields("plain.pkl") == ()


# -- mapped templates ---------------------------------------------------------------------------


def test_a_mapped_target_without_map_index_is_an_error_at_build_time(tmp_path: Path) -> None:
    with Flow("mapped") as flow, pytest.raises(ValueError) as info:
        save.map(
            [1, 2], task_args={"result": LocalResult(dir=tmp_path), "target": "{task_name}.pkl"}
        )
    message = str(info.value)
    assert message.startswith(
        "Task 'save' is mapped, but its target template '{task_name}.pkl' is the same"
    )
    assert "add {map_index} or a mapped input to the template (its mapped inputs: x)" in message
    assert flow is not None


def test_a_mapped_target_without_map_index_fails_validate_and_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    with Flow("mapped") as flow:
        numbers = _marking(marker)(1)
        out = save.map([1, 2], upstream_tasks=[numbers])
    out.target = "out.pkl"  # set after mapping: only validate() and run() can see it
    out.result = LocalResult(dir=tmp_path)
    with pytest.raises(
        ValueError, match="Task 'save' is mapped, but its target template 'out.pkl'"
    ):
        flow.validate()
    state = flow.run(context=CHECKPOINTING)
    assert not marker.exists()
    assert "add {map_index} or a mapped input to the template" in state.result[out].message
    assert type(state) is Failed


@pytest.mark.parametrize(
    "template", ["{task_name}-{map_index}.pkl", "{x}.pkl", "{task_full_name}.pkl"]
)
def test_a_mapped_target_that_varies_per_child_passes(tmp_path: Path, template: str) -> None:
    with Flow("mapped") as flow:
        out = pair.map(
            x=[1, 2],
            y=unmapped(10),
            task_args={"result": LocalResult(dir=tmp_path), "target": template},
        )
    flow.validate()
    state = flow.run(context=CHECKPOINTING)
    assert [c.result for c in state.result[out].map_states] == [11, 12]


def test_an_unmapped_input_does_not_make_a_mapped_target_vary(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match=r"template '\{y\}.pkl' is the same for every child"),
        Flow("mapped"),
    ):
        pair.map(
            x=[1, 2],
            y=unmapped(10),
            task_args={"result": LocalResult(dir=tmp_path), "target": "{y}.pkl"},
        )


def test_a_fixed_flow_result_location_under_a_mapped_task_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"result location \(the flow's result=\) template 'all.pkl'"
    ):
        with Flow("mapped", result=LocalResult(dir=tmp_path, location="all.pkl")):
            save.map([1, 2])


# -- targets without checkpointing ------------------------------------------------------------


def test_targets_without_checkpointing_give_one_warning(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    """Once per process (not on every run of a loop or a schedule), and only when
    checkpointing is off by configuration, not when the run's context says so."""
    with Flow(f"no-checkpoint-{uuid.uuid4()}", result=LocalResult(dir=tmp_path)) as flow:
        save(1, task_args={"target": "a.pkl"})
        pair(1, 2, task_args={"target": lambda **_: "b.pkl"})
        save(3)

    def warned() -> list[str]:
        warnings = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
        return [m for m in warnings if "targets are never written without checkpointing" in m]

    assert flow.run(context={"checkpointing": False}).is_successful()
    assert warned() == []
    assert flow.run().is_successful()
    [warning] = warned()
    assert "task(s) 'save', 'pair'" in warning or "task(s) 'pair', 'save'" in warning
    logs.clear()
    assert flow.run().is_successful()
    assert warned() == []
    flow.run(context=CHECKPOINTING)
    assert not any(
        "checkpointing" in r.getMessage() for r in logs.records if r.levelno == logging.WARNING
    )


def test_no_warning_when_checkpointing_is_on_in_config_or_for_the_task(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    from flowcore.utilities.configuration import set_temporary_config

    with Flow("checkpointing", result=LocalResult(dir=tmp_path)) as flow:
        out = save(1, task_args={"target": "a.pkl"})
    with set_temporary_config({"flows.checkpointing": True}):
        flow.run()
    flow.run(task_contexts={out: {"checkpointing": True}})
    assert not [r for r in logs.records if r.levelno == logging.WARNING]


# -- dry pickling -----------------------------------------------------------------------------


_OPENED: list[sqlite3.Connection] = []  # (by Load tasks; closed after each test, below)


class Load(Task):
    def __init__(self, **kwargs: Any) -> None:
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        _OPENED.append(self.conn)
        self.settings = {"retries": 1, "guard": [threading.Lock()]}
        super().__init__(**kwargs)

    def run(self, x: int) -> int:
        return x + self.conn.execute("select 1").fetchone()[0]


@pytest.fixture(autouse=True)
def _close_loads() -> Any:
    """Close the connections Load tasks opened (Python 3.13 warns of one left open)."""
    yield
    while _OPENED:
        _OPENED.pop().close()


class Guarded(Task):
    def __init__(self, **kwargs: Any) -> None:
        self.settings = {"retries": 1, "guard": [threading.Lock()]}
        super().__init__(**kwargs)

    def run(self, x: int) -> int:
        return x


def _unpicklable_flow(marker: Path, task_cls: type[Task]) -> tuple[Flow, Task]:
    with Flow("unpicklable") as flow:
        out = task_cls(name="load")(_marking(marker)(1))
    return flow, out


def test_an_unpicklable_attribute_fails_a_process_run_before_any_task_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    flow, out = _unpicklable_flow(marker, Load)
    state = flow.run(executor=LocalDaskExecutor("processes"))
    assert not marker.exists()
    assert type(state) is Failed
    message = state.result[out].message
    assert message.startswith(
        "Task 'load': attribute conn (sqlite3.Connection) cannot be pickled: TypeError: "
    )
    assert "LocalDaskExecutor (processes)" in message and "LocalExecutor" in message
    assert isinstance(state.result[out].result, DaskTaskError)


def test_the_attribute_path_goes_into_containers(tmp_path: Path) -> None:
    flow, _ = _unpicklable_flow(tmp_path / "ran.txt", Guarded)
    with pytest.raises(
        DaskTaskError,
        match=r"Task 'load': attribute settings\['guard'\]\[0\] \(_thread.lock\) cannot be pickled",
    ):
        flow.run(executor=LocalDaskExecutor("processes"), context={"raise_on_exception": True})
    assert not (tmp_path / "ran.txt").exists()


def test_an_unpicklable_default_of_a_task_function_is_named(tmp_path: Path) -> None:
    lock = threading.Lock()

    @task
    def guarded(x: int, guard: Any = lock) -> int:
        return x

    with Flow("default") as flow:
        out = guarded(1)
    state = flow.run(executor=LocalDaskExecutor("processes"))
    assert state.result[out].message.startswith(
        "Task 'guarded': run default guard (_thread.lock) cannot be pickled"
    )


def test_the_same_flow_runs_on_local_executor_and_threads(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    flow, out = _unpicklable_flow(marker, Load)
    state = flow.run(executor=LocalExecutor())
    assert state.is_successful() and state.result[out].result == 11
    assert marker.read_text() == "1\n"
    state = flow.run(executor=LocalDaskExecutor("threads"))
    assert isinstance(state.result[out], Success) and state.result[out].result == 11


def test_which_executors_are_checked() -> None:
    assert ships_to_processes(LocalDaskExecutor("processes"))
    assert ships_to_processes(DaskExecutor(address="tcp://127.0.0.1:1"))
    assert not ships_to_processes(LocalDaskExecutor("threads"))
    assert not ships_to_processes(LocalDaskExecutor("sync"))
    assert not ships_to_processes(LocalExecutor())


def test_a_process_pool_imported_on_its_own_is_checked() -> None:
    # LocalDaskExecutor's module does not import DaskExecutor's: the check asks the executor
    code = (
        "import sys\n"
        "from flowcore.core._preflight import ships_to_processes\n"
        "from flowcore.executors.local_dask import LocalDaskExecutor\n"
        "print('flowcore.executors.dask' in sys.modules,"
        " ships_to_processes(LocalDaskExecutor('processes')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]


# -- memoised per structure -------------------------------------------------------------------


def test_the_analysis_is_memoised_until_the_graph_or_the_template_changes(tmp_path: Path) -> None:
    with Flow("memo") as flow:
        out = save(1, task_args={"result": LocalResult(dir=tmp_path), "target": "{x}.pkl"})
    flow.validate()
    memo = flow._cache["flowcore.preflight"]
    flow.validate()
    assert flow._cache["flowcore.preflight"] is memo and out in memo
    out.target = "{nope}.pkl"
    with pytest.raises(TemplateKeyError, match="unknown key 'nope'"):
        flow.validate()
    out.target = "{x}-{y}.pkl"
    with pytest.raises(TemplateKeyError, match="unknown key 'y'"):
        flow.validate()
    flow.add_task(Parameter("y", default=0))
    assert "flowcore.preflight" not in flow._cache
    flow.validate()
