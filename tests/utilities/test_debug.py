"""``raise_on_exception``: exceptions inside tasks propagate out of ``flow.run``."""

from __future__ import annotations

import pytest

from flowcore import Flow, context, task
from flowcore.engine import signals
from flowcore.engine.state import Failed, Skipped
from flowcore.utilities.debug import raise_on_exception


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
