"""``raise_on_exception``: exceptions inside tasks propagate out of ``flow.run``;
``is_serializable``: an object survives cloudpickle and a fresh process."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from flowcore import Flow, context, task
from flowcore.engine import signals
from flowcore.engine.state import Failed, Skipped
from flowcore.utilities.debug import is_serializable, raise_on_exception


class CustomError(Exception):
    pass


@task
def explode() -> None:
    raise CustomError("from inside the task")


@task
def skip() -> None:
    raise signals.SKIP("skip me")


def test_without_it_the_task_fails() -> None:
    with Flow("quiet") as flow:
        boom = explode()
    state = flow.run()
    assert state.is_failed()
    assert isinstance(state.result[boom], Failed)
    assert isinstance(state.result[boom].result, CustomError)


def test_the_exception_propagates_out_of_flow_run() -> None:
    with Flow("loud") as flow:
        explode()
    with raise_on_exception(), pytest.raises(CustomError, match="from inside the task"):
        flow.run()


def test_each_layer_logs_the_error_before_it_goes_on(logs: pytest.LogCaptureFixture) -> None:
    """As on Prefect 1.4.1: the task's own error is raised as it is, then each runner
    layer it passes through logs its ERROR line (with the traceback) and raises it on."""
    with Flow("explodes") as flow:
        explode()
    with raise_on_exception(), pytest.raises(CustomError):
        flow.run()
    errors = [(r.name, r.getMessage()) for r in logs.records if r.levelname == "ERROR"]
    error = "CustomError('from inside the task')"
    assert errors == [
        ("flowcore.TaskRunner", f"Unexpected error: {error}"),
        ("flowcore.TaskRunner", f"Task 'explode': Unexpected error while running task: {error}"),
        ("flowcore.FlowRunner", f"Unexpected error: {error}"),
        ("flowcore.FlowRunner", f"Unexpected error while running flow: {error}"),
    ]
    assert all(r.exc_info for r in logs.records if r.levelname == "ERROR")


def test_it_sets_the_context_key_only_inside_the_block() -> None:
    with raise_on_exception():
        assert context.raise_on_exception is True
    assert "raise_on_exception" not in context


def test_signals_in_the_task_body_still_set_states() -> None:
    # verified on Prefect 1.4.1: SKIP / FAIL raised by the task body are not re-raised
    with Flow("signal") as flow:
        skipped = skip()
    with raise_on_exception():
        state = flow.run()
    assert isinstance(state.result[skipped], Skipped)
    assert state.result[skipped].message == "skip me"


def test_flows_run_normally_when_nothing_fails() -> None:
    @task
    def fine() -> int:
        return 1

    with Flow("fine") as flow:
        result = fine()
    with raise_on_exception():
        state = flow.run()
    assert state.is_successful() and state.result[result].result == 1
    assert not isinstance(state.result[result], Skipped)


def test_is_serializable_loads_the_object_in_a_fresh_process(tmp_path: Path) -> None:
    """Prefect 1.4.1 (verified with the same objects): True for a lambda (cloudpickled by
    value), False for an object whose class only this process can import (the fresh process
    fails with ModuleNotFoundError, raised as CalledProcessError with ``raise_on_error``), and
    False for an object cloudpickle refuses (the TypeError itself with ``raise_on_error``)."""
    (tmp_path / "only_in_this_process.py").write_text("class Thing:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("only_in_this_process")
        assert is_serializable(lambda x: x + 1) is True
        assert is_serializable(module.Thing()) is False
        with pytest.raises(subprocess.CalledProcessError) as info:
            is_serializable(module.Thing(), raise_on_error=True)
        assert b"ModuleNotFoundError" in info.value.output
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("only_in_this_process", None)
    assert is_serializable(threading.Lock()) is False
    with pytest.raises(TypeError, match="pickle"):
        is_serializable(threading.Lock(), raise_on_error=True)


def test_is_serializable_accepts_a_flow() -> None:
    with Flow("travels") as flow:
        explode()
    assert is_serializable(flow) is True
