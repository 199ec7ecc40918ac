"""``flow.run()`` on a schedule (reference 2.5, 7.3, 13; weakness 11).

Each scheduled run gets its own ``flow_run_id`` (Prefect 1 reuses one for every run).
Clocks here fire a fraction of a second ahead, so the tests never wait long.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pendulum
import pytest

from flowcore import Flow, Parameter, context, task
from flowcore.engine.state import Cached, Pending, Scheduled, State, Success
from flowcore.schedules import Schedule
from flowcore.schedules.clocks import Clock, ClockEvent, DatesClock
from flowcore.utilities.configuration import set_temporary_config

RUNS: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def fresh_runs() -> None:
    RUNS.clear()


@task
def record(p: Any) -> Any:
    RUNS.append(
        {
            "p": p,
            "flow_run_id": context.flow_run_id,
            "flow_run_name": context.flow_run_name,
            "scheduled_start_time": context.scheduled_start_time,
            "parameters": dict(context.parameters),
        }
    )
    return p


class SoonClock(Clock):
    """A user clock: each time it is asked, one event a moment from now, ``runs`` times
    in all (so scheduled runs follow each other without real waiting). ``defaults`` gives
    the parameter defaults of each event in turn."""

    def __init__(self, runs: int, defaults: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.remaining = runs
        self.defaults = list(defaults or [])

    def events(self, after: Any = None) -> Iterator[ClockEvent]:
        if self.remaining > 0:
            self.remaining -= 1
            defaults = self.defaults.pop(0) if self.defaults else {}
            yield ClockEvent(pendulum.now("UTC").add(microseconds=500), defaults)


def scheduled_flow(schedule: Schedule) -> tuple[Flow, Parameter]:
    with Flow("scheduled", schedule=schedule) as flow:
        p = Parameter("p", default="base")
        record(p)
    return flow, p


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


def test_every_scheduled_run_gets_its_own_flow_run_id() -> None:
    flow, _ = scheduled_flow(Schedule(clocks=[SoonClock(3)]))
    state = run(flow)
    assert type(state) is Success
    assert len(RUNS) == 3
    assert len({r["flow_run_id"] for r in RUNS}) == 3
    assert len({r["flow_run_name"] for r in RUNS}) == 3


def test_dates_clock_runs_each_date_with_its_scheduled_start_time() -> None:
    now = pendulum.now("UTC")
    dates = [now.add(seconds=0.05), now.add(seconds=0.15)]
    flow, _ = scheduled_flow(Schedule(clocks=[DatesClock(dates)]))
    state = run(flow)
    assert type(state) is Success
    assert 1 <= len(RUNS) <= 2  # a date that passed while a run was going on is skipped
    assert RUNS[0]["scheduled_start_time"] == dates[0]
    assert [r["scheduled_start_time"] for r in RUNS] == dates[: len(RUNS)]
    assert len({r["flow_run_id"] for r in RUNS}) == len(RUNS)


def test_waiting_is_logged(logs: pytest.LogCaptureFixture) -> None:
    when = pendulum.now("UTC").add(seconds=0.05)
    flow, _ = scheduled_flow(Schedule(clocks=[DatesClock([when])]))
    run(flow)
    assert f"Waiting for next scheduled run at {when}" in logs.messages
    assert "Flow 'scheduled' has no more scheduled runs." in logs.messages


def test_parameter_defaults_of_the_event_update_the_base_parameters() -> None:
    schedule = Schedule(clocks=[SoonClock(2, defaults=[{"p": "from-clock", "extra": 1}, {}])])
    flow, _ = scheduled_flow(schedule)
    run(flow, p="given")
    assert [r["p"] for r in RUNS] == ["from-clock", "given"]
    # a default for a name that is not a Parameter reaches context.parameters only
    assert RUNS[0]["parameters"] == {"p": "from-clock", "extra": 1}
    assert RUNS[1]["parameters"] == {"p": "given"}


def test_events_at_the_same_time_with_other_defaults_each_run() -> None:
    # two regions' clocks fire at once: both runs happen (the second was dropped, as the
    # schedule was asked for events after the first run ended)
    when = pendulum.now("UTC").add(seconds=0.05)
    schedule = Schedule(
        clocks=[
            DatesClock([when], parameter_defaults={"p": "emea"}),
            DatesClock([when], parameter_defaults={"p": "apac"}),
        ]
    )
    flow, _ = scheduled_flow(schedule)
    run(flow)
    assert sorted(r["p"] for r in RUNS) == ["apac", "emea"]
    assert [r["scheduled_start_time"] for r in RUNS] == [when, when]


def test_the_last_run_state_is_returned() -> None:
    @task
    def fail_second() -> None:
        if len(RUNS) == 2:
            raise ValueError("second run fails")

    schedule = Schedule(clocks=[SoonClock(2)])
    with Flow("scheduled", schedule=schedule) as flow:
        recorded = record(1)
        failing = fail_second(upstream_tasks=[recorded])
    state = run(flow)
    assert len(RUNS) == 2
    assert state.message == "Some reference tasks failed."
    assert isinstance(state.result[failing].result, ValueError)


def test_an_empty_schedule_raises() -> None:
    past = pendulum.now("UTC").subtract(days=1)
    flow, _ = scheduled_flow(Schedule(clocks=[DatesClock([past])]))
    with pytest.raises(ValueError, match="Flow has no more scheduled runs."):
        flow.run()
    assert RUNS == []


def test_run_on_schedule_false_runs_once_now() -> None:
    later = pendulum.now("UTC").add(hours=1)
    flow, _ = scheduled_flow(Schedule(clocks=[DatesClock([later])]))
    state = run(flow, run_on_schedule=False)
    assert type(state) is Success
    assert len(RUNS) == 1
    with set_temporary_config({"flows.run_on_schedule": False}):
        run(flow)
    assert len(RUNS) == 2


def test_flowcores_own_run_arguments_apply_to_every_scheduled_run() -> None:
    # (they were dropped on the way to the scheduled runs; resume is one run's, refused)
    flow, p = scheduled_flow(Schedule(clocks=[SoonClock(2)]))
    recorded = flow.get_tasks(name="record")[0]
    state = run(flow, return_tasks=[recorded], map_batch_size=5, progress=False)
    assert len(RUNS) == 2
    assert set(state.result) == {recorded}  # not the Parameter
    with pytest.raises(ValueError, match="pass run_on_schedule=False to resume the run"):
        flow.run(resume="last")
    assert len(RUNS) == 2


def test_a_scheduled_state_given_waits_for_its_start_time(logs: pytest.LogCaptureFixture) -> None:
    """Prefect 1.4.1 (verified): ``flow.run(state=Scheduled(start_time=...))`` logs that it
    waits, and starts then (it returned at once, with no task run)."""
    with Flow("later") as flow:
        record(1)
    start = pendulum.now("UTC").add(seconds=0.3)
    state = run(flow, state=Scheduled(start_time=start))
    assert type(state) is Success and len(RUNS) == 1
    assert f"Waiting for next scheduled run at {start}" in logs.messages
    assert pendulum.now("UTC") >= start


def test_flow_run_id_and_name_given_apply_to_the_first_run_only() -> None:
    flow, _ = scheduled_flow(Schedule(clocks=[SoonClock(2)]))
    run(flow, flow_run_id="first-id", flow_run_name="first-name")
    assert [r["flow_run_id"] for r in RUNS][0] == "first-id"
    assert [r["flow_run_name"] for r in RUNS][0] == "first-name"
    assert RUNS[1]["flow_run_id"] != "first-id"


def test_task_states_apply_to_the_first_run_only() -> None:
    flow, p = scheduled_flow(Schedule(clocks=[SoonClock(2)]))
    state = run(flow, task_states={p: Success(result="preset")})
    assert [r["p"] for r in RUNS] == ["preset", "base"]
    assert state.result[p].result == "base"


def test_caches_carry_over_between_scheduled_runs() -> None:
    calls = []

    @task(cache_for=timedelta(hours=1))
    def expensive() -> int:
        calls.append(1)
        return 42

    with Flow("cached", schedule=Schedule(clocks=[SoonClock(2)])) as flow:
        value = expensive()
    state = run(flow)
    assert calls == [1]
    assert type(state.result[value]) is Cached
    assert state.result[value].result == 42


class InterruptingClock(Clock):
    """Gives ``runs`` events a moment away, then one far away, and sends this process a
    SIGINT (Ctrl-C) shortly after handing that one out, while flow.run() sleeps for it."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.runs = runs

    def events(self, after: Any = None) -> Iterator[ClockEvent]:
        if self.runs > 0:
            self.runs -= 1
            yield self._event(pendulum.now("UTC").add(microseconds=500))
            return
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        yield self._event(pendulum.now("UTC").add(hours=1))


def test_ctrl_c_between_runs_returns_the_last_state(logs: pytest.LogCaptureFixture) -> None:
    flow, p = scheduled_flow(Schedule(clocks=[InterruptingClock(runs=2)]))
    state = run(flow)
    assert len(RUNS) == 2
    assert type(state) is Success
    assert state.result[p].result == "base"
    assert "Stopped running 'scheduled' on its schedule (KeyboardInterrupt)." in logs.messages


def test_ctrl_c_before_the_first_run() -> None:
    flow, p = scheduled_flow(Schedule(clocks=[InterruptingClock(runs=0)]))
    state = run(flow)
    assert RUNS == []
    assert type(state) is Scheduled
    assert state.message == "Stopped before the first scheduled run."
    assert state.start_time is not None and state.start_time > pendulum.now("UTC")
    assert type(state.result[p]) is Pending
