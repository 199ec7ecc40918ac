"""Checkpointing in flows: when values are written, where, and by which Result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, task
from flowcore.engine.results import LocalResult, PrefectResult
from flowcore.engine.serializers import Serializer
from flowcore.engine.state import Failed
from flowcore.utilities.configuration import set_temporary_config


@task
def double(x: int) -> int:
    return 2 * x


@task
def nothing() -> None:
    return None


def _flow(result: LocalResult, **task_kwargs: Any) -> tuple[Flow, Any]:
    with Flow("checkpoints") as flow:
        out = double(Parameter("x", default=3), task_args={"result": result, **task_kwargs})
    return flow, out


def test_checkpointing_is_off_by_default(tmp_path: Path) -> None:
    flow, out = _flow(LocalResult(dir=tmp_path, location="d.pkl"))
    state = flow.run()
    assert state.result[out].result == 6
    assert state.result[out]._result.location is None
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("switch", ["context", "config"])
def test_checkpointing_on_writes_and_records_the_location(tmp_path: Path, switch: str) -> None:
    flow, out = _flow(LocalResult(dir=tmp_path, location="d-{x}.pkl"))
    if switch == "context":
        state = flow.run(context={"checkpointing": True})
    else:
        with set_temporary_config({"flows.checkpointing": True}):
            state = flow.run()
    assert state.result[out]._result.location == str(tmp_path / "d-3.pkl")
    assert LocalResult(dir=tmp_path).read("d-3.pkl").value == 6


def test_env_var_turns_checkpointing_on(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        from flowcore import Flow, task
        from flowcore.engine.results import LocalResult

        @task(result=LocalResult(dir={str(tmp_path)!r}, location="env.pkl"))
        def one():
            return 1

        with Flow("env") as flow:
            one()
        assert flow.run().is_successful()
    """)
    )
    env = {
        **os.environ,
        "FLOWCORE__FLOWS__CHECKPOINTING": "true",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=120)
    assert (tmp_path / "env.pkl").exists()


def test_checkpoint_false_opts_out(tmp_path: Path) -> None:
    flow, out = _flow(LocalResult(dir=tmp_path, location="d.pkl"), checkpoint=False)
    state = flow.run(context={"checkpointing": True})
    assert state.result[out].result == 6 and os.listdir(tmp_path) == []


def test_none_is_never_written(tmp_path: Path) -> None:
    with Flow("none") as flow:
        out = nothing(task_args={"result": LocalResult(dir=tmp_path, location="n.pkl")})
    state = flow.run(context={"checkpointing": True})
    assert state.result[out].is_successful() and os.listdir(tmp_path) == []


def test_flow_level_result_is_the_default(tmp_path: Path) -> None:
    with Flow("flow-result", result=LocalResult(dir=tmp_path, location="{task_name}.pkl")) as flow:
        out = double(21)
    state = flow.run(context={"checkpointing": True})
    assert state.result[out]._result.location == str(tmp_path / "double.pkl")
    assert flow.result is not None and flow.result.location == "{task_name}.pkl"


def test_parameters_are_checkpointed_as_json_text() -> None:
    with Flow("params") as flow:
        p = Parameter("p", default={"a": 1})
        double(1, upstream_tasks=[p])
    state = flow.run(context={"checkpointing": True})
    assert isinstance(p.result, PrefectResult)
    assert json.loads(state.result[p]._result.location) == {"a": 1}


def test_mapped_children_are_each_written(tmp_path: Path) -> None:
    with Flow("mapped") as flow:
        out = double.map(
            [1, 2, 3], task_args={"result": LocalResult(dir=tmp_path, location="m-{map_index}.pkl")}
        )
    state = flow.run(context={"checkpointing": True})
    assert sorted(os.listdir(tmp_path)) == ["m-0.pkl", "m-1.pkl", "m-2.pkl"]
    assert [c._result.location for c in state.result[out].map_states] == [
        str(tmp_path / f"m-{i}.pkl") for i in range(3)
    ]


class _Broken(Serializer):
    def serialize(self, value: object) -> bytes:
        raise OSError("disk full")


def test_a_failed_checkpoint_write_fails_the_task_loudly(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    flow, out = _flow(LocalResult(dir=tmp_path, location="d.pkl", serializer=_Broken()))
    state = flow.run(context={"checkpointing": True})
    task_state = state.result[out]
    assert isinstance(task_state, Failed) and state.is_failed()
    assert "could not checkpoint the result: OSError('disk full')" in str(task_state.message)
    assert any(
        "could not checkpoint" in r.getMessage() and r.levelname == "ERROR" for r in logs.records
    )


def test_an_escaping_location_from_a_parameter_fails_before_writing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with Flow("escape") as flow:
        name = Parameter("name")
        out = double(
            2,
            upstream_tasks=[name],
            task_args={"result": LocalResult(dir=store, location="{name}.pkl")},
        )
    state = flow.run(parameters={"name": "../outside"}, context={"checkpointing": True})
    assert state.result[out].is_failed()
    assert "escapes" in str(state.result[out].message)
    assert not (tmp_path / "outside.pkl").exists() and os.listdir(store) == []
