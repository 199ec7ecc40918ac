"""The context a task sees during ``flow.run`` (reference 6.6, 6.8, 7.1, 11.2).

The key list and values were compared with Prefect 1.4.1 on the same flow.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pendulum
import pytest

from flowcore import Flow, Parameter, Task, context, task
from flowcore.utilities.configuration import set_temporary_config

FLOW_KEYS = {
    "flow_name",
    "flow_id",
    "flow_run_id",
    "flow_run_name",
    "scheduled_start_time",
    "parameters",
    "date",
    "today",
    "yesterday",
    "tomorrow",
    "today_nodash",
    "yesterday_nodash",
    "tomorrow_nodash",
    "config",
    "caches",
}
TASK_KEYS = {
    "task_name",
    "task_slug",
    "task_id",
    "task_run_id",
    "map_index",
    "task_full_name",
    "task_run_count",
    "task_tags",
    "checkpointing",
    "logger",
}


def snapshot_flow(**task_kwargs: Any) -> tuple[Flow, Task, dict[str, Any]]:
    seen: dict[str, Any] = {}

    @task(tags=["t1"], **task_kwargs)
    def probe(x: int, p: int) -> int:
        seen.update(context.to_dict())
        return x

    with Flow("ctx-flow") as flow:
        p = Parameter("p", default=9)
        t = probe(3, p)
    return flow, t, seen


def test_all_reference_keys_are_present_during_a_task_run() -> None:
    flow, t, seen = snapshot_flow()
    flow.run()
    assert FLOW_KEYS | TASK_KEYS <= set(seen)
    assert "task_loop_count" not in seen
    assert "resume" not in seen
    assert "task_run_name" not in seen


def test_flow_level_values() -> None:
    flow, t, seen = snapshot_flow()
    flow.run()
    assert seen["flow_name"] == "ctx-flow"
    assert seen["flow_id"] == "ctx-flow"
    uuid.UUID(seen["flow_run_id"])
    uuid.UUID(seen["flow_run_name"])
    assert isinstance(seen["scheduled_start_time"], pendulum.DateTime)
    assert seen["parameters"] == {"p": 9}
    assert isinstance(seen["date"], pendulum.DateTime)
    assert seen["today"] == seen["date"].strftime("%Y-%m-%d")
    assert seen["today_nodash"] == seen["date"].strftime("%Y%m%d")
    assert seen["yesterday"] == seen["date"].subtract(days=1).strftime("%Y-%m-%d")
    assert seen["tomorrow_nodash"] == seen["date"].add(days=1).strftime("%Y%m%d")
    assert seen["caches"] == {}


def test_task_level_values() -> None:
    flow, t, seen = snapshot_flow()
    flow.run()
    assert seen["task_name"] == "probe"
    assert seen["task_slug"] == flow.slugs[t] == "probe-t1-1"
    assert seen["task_id"] == seen["task_slug"]
    uuid.UUID(seen["task_run_id"])
    assert seen["map_index"] is None
    assert seen["task_full_name"] == "probe"
    assert seen["task_run_count"] == 1
    assert seen["task_tags"] == {"t1"}
    assert seen["checkpointing"] is False
    assert isinstance(seen["logger"], logging.Logger)
    assert seen["logger"].name == "flowcore.probe"


def test_checkpointing_follows_config() -> None:
    flow, t, seen = snapshot_flow()
    with set_temporary_config({"flows.checkpointing": True}):
        flow.run()
    assert seen["checkpointing"] is True


def test_checkpointing_from_run_context() -> None:
    flow, t, seen = snapshot_flow()
    flow.run(context={"checkpointing": True})
    assert seen["checkpointing"] is True


def test_context_date_string_backfills_the_date_keys() -> None:
    flow, t, seen = snapshot_flow()
    flow.run(context={"date": "2020-01-02"})
    assert seen["date"] == pendulum.datetime(2020, 1, 2)
    assert (seen["today"], seen["yesterday"], seen["tomorrow"]) == (
        "2020-01-02",
        "2020-01-01",
        "2020-01-03",
    )
    assert (seen["today_nodash"], seen["yesterday_nodash"], seen["tomorrow_nodash"]) == (
        "20200102",
        "20200101",
        "20200103",
    )


def test_context_date_datetime_backfills() -> None:
    flow, t, seen = snapshot_flow()
    flow.run(context={"date": pendulum.datetime(2019, 12, 31, 23)})
    assert (seen["today"], seen["tomorrow"]) == ("2019-12-31", "2020-01-01")


def test_date_from_the_surrounding_context_backfills() -> None:
    # Prefect 1.4.1 starts a run's context from the current one, so a backfill written as
    # `with prefect.context(date=...): flow.run()` sees that date; flow.run(context=) wins.
    flow, t, seen = snapshot_flow()
    with context(date="2021-03-04"):
        flow.run()
    assert (seen["date"], seen["today"]) == (pendulum.datetime(2021, 3, 4), "2021-03-04")
    with context(date="2021-03-04"):
        flow.run(context={"date": "2022-05-06"})
    assert seen["today"] == "2022-05-06"


def test_unparsable_date_is_kept_and_the_other_keys_follow_the_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prefect 1.4.1: WARNING "... could not be parsed into a pendulum `DateTime` object ...",
    # `date` stays as given, `today` and friends are today's.
    flow, t, seen = snapshot_flow()
    with caplog.at_level(logging.WARNING):
        flow.run(context={"date": "not a date"})
    assert seen["date"] == "not a date"
    assert seen["today"] == pendulum.now("UTC").strftime("%Y-%m-%d")
    assert "could not be parsed into a pendulum `DateTime` object" in caplog.text


def test_flow_run_sets_its_own_scheduled_start_time() -> None:
    # Prefect 1.4.1's flow.run() sets scheduled_start_time (now, or the schedule's event)
    # over one given in context=; a FlowRunner run directly keeps the given one.
    flow, t, seen = snapshot_flow()
    flow.run(context={"scheduled_start_time": 42})
    assert isinstance(seen["scheduled_start_time"], pendulum.DateTime)
    flow.run(context={"scheduled_start_time": 42}, run_on_schedule=False)
    assert isinstance(seen["scheduled_start_time"], pendulum.DateTime)
    from flowcore.engine.flow_runner import FlowRunner

    FlowRunner(flow).run(context={"scheduled_start_time": 42}, parameters={"p": 1})
    assert seen["scheduled_start_time"] == 42


def test_context_copy_is_a_detached_context_of_the_current_keys() -> None:
    from flowcore.utilities.context import Context

    with context(a=1):
        snapshot = context.copy()
    assert isinstance(snapshot, Context)
    assert snapshot["a"] == 1 and "a" not in context
    snapshot["b"] = 2
    assert "b" not in context


def test_user_context_and_task_contexts_are_visible() -> None:
    flow, t, seen = snapshot_flow()
    flow.run(context={"extra": 1}, task_contexts={t: {"mine": 2}})
    assert (seen["extra"], seen["mine"]) == (1, 2)


def test_user_context_cannot_replace_run_identity() -> None:
    flow, t, seen = snapshot_flow()
    flow.run(context={"flow_name": "other", "flow_id": "other"})
    assert (seen["flow_name"], seen["flow_id"]) == ("ctx-flow", "ctx-flow")


def test_task_contexts_kept_across_retry_passes() -> None:
    # Prefect 1.4.1 drops task_contexts after the first pass; flowcore keeps them
    seen: list[Any] = []

    @task(max_retries=2, retry_delay=timedelta(0))
    def t() -> None:
        seen.append((context.get("mine"), context.task_run_count))
        if len(seen) < 3:
            raise ValueError("again")

    with Flow("f") as flow:
        a = t()
    flow.run(task_contexts={a: {"mine": "kept"}})
    assert seen == [("kept", 1), ("kept", 2), ("kept", 3)]


def test_run_context_kept_across_retry_passes() -> None:
    seen: list[Any] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def t() -> None:
        seen.append(context.get("extra"))
        if len(seen) == 1:
            raise ValueError("again")

    with Flow("f") as flow:
        t()
    flow.run(context={"extra": "kept"})
    assert seen == ["kept", "kept"]


def test_parameters_given_override_defaults_in_context() -> None:
    flow, t, seen = snapshot_flow()
    flow.run(p=1)
    assert seen["parameters"] == {"p": 1}


def test_task_run_name_template_uses_inputs_parameters_and_context() -> None:
    flow, t, seen = snapshot_flow(task_run_name="run-{x}-{p}-{today}")
    flow.run(context={"date": "2020-01-02"})
    assert seen["task_run_name"] == "run-3-9-2020-01-02"


def test_task_run_name_callable() -> None:
    def name(**kwargs: Any) -> str:
        return f"{kwargs['task_name']}/{kwargs['x'] + kwargs['p']}"

    flow, t, seen = snapshot_flow(task_run_name=name)
    flow.run()
    assert seen["task_run_name"] == "probe/12"


def test_task_run_name_for_mapped_children() -> None:
    names: list[str] = []

    @task(task_run_name="item-{x}")
    def t(x: int) -> None:
        names.append(context.task_run_name)

    with Flow("f") as flow:
        t.map([1, 2])
    flow.run()
    assert names == ["item-1", "item-2"]


def test_mapped_children_context() -> None:
    seen: list[Any] = []

    @task
    def t(x: int) -> None:
        seen.append((context.map_index, context.task_full_name, context.logger.name))

    with Flow("f") as flow:
        t.map([1, 2])
    flow.run()
    assert seen == [(0, "t[0]", "flowcore.t[0]"), (1, "t[1]", "flowcore.t[1]")]


def test_parameter_values_reach_the_task() -> None:
    @task
    def echo(v: Any) -> Any:
        return v

    with Flow("f") as flow:
        e = echo(Parameter("v", default=[1, 2]))
    state = flow.run()
    assert state is not None
    assert state.result[e].result == [1, 2]


@pytest.mark.parametrize("key", sorted(TASK_KEYS - {"logger"}))
def test_task_keys_absent_after_the_run(key: str) -> None:
    flow, t, seen = snapshot_flow()
    flow.run()
    assert key in seen
    assert key not in context
