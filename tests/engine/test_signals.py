"""Signals: the state each one carries, result defaults, ENDRUN, signal_from_state."""

from __future__ import annotations

import pendulum
import pytest

from flowcore import Flow, task
from flowcore.engine import signals
from flowcore.engine import state as st
from flowcore.engine.result import NoResult
from flowcore.engine.runner import ENDRUN as RUNNER_ENDRUN
from flowcore.engine.signals import (
    ENDRUN,
    FAIL,
    LOOP,
    PAUSE,
    RETRY,
    SKIP,
    SUCCESS,
    TRIGGERFAIL,
    VALIDATIONFAIL,
    PrefectStateSignal,
    signal_from_state,
)
from flowcore.exceptions import FlowcoreSignal, PrefectSignal

SIGNAL_STATES: list[tuple[type[PrefectStateSignal], type[st.State]]] = [
    (FAIL, st.Failed),
    (TRIGGERFAIL, st.TriggerFailed),
    (VALIDATIONFAIL, st.ValidationFailed),
    (SUCCESS, st.Success),
    (RETRY, st.Retrying),
    (SKIP, st.Skipped),
    (PAUSE, st.Paused),
    (LOOP, st.Looped),
]


@pytest.mark.parametrize(("signal", "state_cls"), SIGNAL_STATES, ids=lambda x: x.__name__)
def test_each_signal_carries_its_state_class(
    signal: type[PrefectStateSignal], state_cls: type[st.State]
) -> None:
    raised = signal("the message")
    assert type(raised.state) is state_cls
    assert raised.state.message == "the message"


@pytest.mark.parametrize(("signal", "state_cls"), SIGNAL_STATES, ids=lambda x: x.__name__)
def test_signals_are_base_exceptions_not_exceptions(
    signal: type[PrefectStateSignal], state_cls: type[st.State]
) -> None:
    assert issubclass(signal, BaseException) and not issubclass(signal, Exception)
    assert issubclass(signal, PrefectSignal) and issubclass(signal, FlowcoreSignal)
    with pytest.raises(signal):
        try:
            raise signal("escape")
        except Exception:  # a user's broad handler must not catch it
            pytest.fail("a signal was caught by `except Exception`")


@pytest.mark.parametrize("signal", [FAIL, TRIGGERFAIL, VALIDATIONFAIL, SUCCESS, RETRY, SKIP, PAUSE])
def test_result_defaults_to_the_signal_itself(signal: type[PrefectStateSignal]) -> None:
    raised = signal("m")
    assert raised.state.result is raised


def test_loop_result_defaults_to_its_repr() -> None:
    assert LOOP().state.result == "LOOP()"
    assert LOOP("msg").state.result == "LOOP('msg')"


def test_result_override() -> None:
    assert SUCCESS("ok", result=5).state.result == 5
    assert LOOP(result=3).state.result == 3
    assert SKIP("nothing", result=None).state._result is NoResult


def test_message_defaults_to_none() -> None:
    assert SKIP().state.message is None
    assert str(SKIP("why")) == "why"


def test_pause_and_retry_accept_start_time() -> None:
    when = pendulum.datetime(2030, 1, 1, tz="UTC")
    assert PAUSE("p", start_time=when).state.start_time == when
    assert RETRY("r", start_time=when).state.start_time == when
    assert PAUSE("p").state.start_time is None
    assert RETRY("r").state.start_time <= pendulum.now("UTC")


def test_retry_run_count_defaults_to_the_current_one() -> None:
    from flowcore import context

    assert RETRY().state.run_count == 1
    with context(task_run_count=4):
        assert RETRY().state.run_count == 4


def test_loop_count_comes_from_context() -> None:
    from flowcore import context

    with context(task_loop_count=3):
        assert LOOP().state.loop_count == 3


def test_signal_hierarchy() -> None:
    assert issubclass(TRIGGERFAIL, FAIL) and issubclass(VALIDATIONFAIL, FAIL)
    assert not issubclass(SKIP, SUCCESS)
    assert issubclass(ENDRUN, FlowcoreSignal)
    assert not issubclass(ENDRUN, PrefectStateSignal) and not issubclass(ENDRUN, Exception)


def test_endrun_carries_a_state_and_is_reexported_by_the_runner() -> None:
    final = st.Success("done")
    with pytest.raises(ENDRUN) as info:
        raise ENDRUN(final)
    assert info.value.state is final
    assert RUNNER_ENDRUN is ENDRUN


@pytest.mark.parametrize(("signal", "state_cls"), SIGNAL_STATES, ids=lambda x: x.__name__)
def test_signal_from_state_maps_back(
    signal: type[PrefectStateSignal], state_cls: type[st.State]
) -> None:
    assert signal_from_state(state_cls()) is signal


@pytest.mark.parametrize(
    "state", [st.Pending(), st.Cached(), st.Mapped(), st.TimedOut(), st.Running(), st.State()]
)
def test_signal_from_state_without_a_signal_raises(state: st.State) -> None:
    with pytest.raises(ValueError, match=f"No signal matches the provided state: {state!r}"):
        signal_from_state(state)


def test_module_exports() -> None:
    for name in (
        "FAIL",
        "LOOP",
        "PAUSE",
        "RETRY",
        "SKIP",
        "SUCCESS",
        "TRIGGERFAIL",
        "VALIDATIONFAIL",
        "ENDRUN",
        "signal_from_state",
        "PrefectStateSignal",
    ):
        assert hasattr(signals, name)


def test_signals_raised_in_a_flow_set_the_task_state() -> None:
    @task
    def skipper() -> None:
        raise SKIP("not today")

    @task
    def succeeder() -> None:
        raise SUCCESS("early", result=7)

    @task
    def failer() -> None:
        try:
            raise FAIL("nope")
        except Exception:  # must not catch the signal
            pass

    with Flow("signals") as flow:
        a, b, c = skipper(), succeeder(), failer()
    states = flow.run().result
    assert type(states[a]) is st.Skipped and states[a].message == "not today"
    assert type(states[b]) is st.Success and states[b].result == 7
    assert type(states[c]) is st.Failed and states[c].message == "nope"
    assert isinstance(states[c].result, FAIL)
