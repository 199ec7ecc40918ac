"""The Runner base class (reference 6.2, 6.4): construction, ``initialize_run``, state-handler
calls and ``call_state_handlers`` steps. Every expectation was verified against prefect 1.4.1
(its ``prefect.engine.runner.Runner`` on the same calls)."""

from __future__ import annotations

from typing import Any

import pytest

from flowcore.engine import signals
from flowcore.engine.runner import ENDRUN, Runner, call_state_handlers
from flowcore.engine.state import (
    Cached,
    Failed,
    Paused,
    Pending,
    Queued,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Submitted,
    Success,
)


class FailingTargetRunner(Runner):
    def __init__(self, exc: BaseException, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exc = exc

    def call_runner_target_handlers(self, old_state: State, new_state: State) -> State:
        raise self.exc


class StepRunner(Runner):
    """A runner with one decorated step whose outcome the test chooses."""

    def __init__(self, outcome: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outcome = outcome
        self.calls = 0

    @call_state_handlers
    def step(self, state: State) -> State:
        self.calls += 1
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome if self.outcome is not None else state


def transitions(log: list[tuple[str, str]]) -> Any:
    def handler(runner: Runner, old: State, new: State) -> None:
        log.append((type(old).__name__, type(new).__name__))

    return handler


# -- construction -------------------------------------------------------------------------


def test_runner_defaults() -> None:
    # verified against prefect 1.4.1: Runner() has no handlers and a logger named after
    # its class
    runner = Runner()
    assert runner.state_handlers == []
    assert runner.logger.name == "flowcore.Runner"
    assert StepRunner(None).logger.name == "flowcore.StepRunner"


@pytest.mark.parametrize("handlers", [False, 1, lambda *a: None], ids=["False", "1", "callable"])
def test_state_handlers_must_be_a_list(handlers: Any) -> None:
    # verified against prefect 1.4.1: TypeError
    with pytest.raises(TypeError):
        Runner(state_handlers=handlers)


# -- initialize_run -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [Success(), Failed(), Pending(), Scheduled(), Skipped(), Cached(), Retrying(), Running()],
    ids=lambda s: type(s).__name__,
)
def test_initialize_run_returns_the_state_and_context_given(state: State) -> None:
    # verified against prefect 1.4.1: the same objects come back
    context: dict[str, Any] = {}
    new_state, new_context = Runner().initialize_run(state=state, context=context)
    assert new_state is state
    assert new_context is context


@pytest.mark.parametrize("meta", [Submitted, Queued], ids=lambda c: c.__name__)
@pytest.mark.parametrize("inner", [Pending, Retrying, Scheduled, Resume], ids=lambda c: c.__name__)
def test_initialize_run_unwraps_every_meta_state(meta: type[State], inner: type[State]) -> None:
    # verified against prefect 1.4.1: Submitted(state=X) and Queued(state=X) start from X
    wrapped = inner()
    new_state, _ = Runner().initialize_run(meta(state=wrapped), context={})  # type: ignore[call-arg]
    assert new_state is wrapped


def test_initialize_run_unwraps_nested_meta_states() -> None:
    inner = Retrying()
    new_state, _ = Runner().initialize_run(Submitted(state=Queued(state=inner)), {})
    assert new_state is inner


def test_initialize_run_without_a_state_starts_pending() -> None:
    # verified against prefect 1.4.1
    new_state, _ = Runner().initialize_run(state=None, context={})
    assert type(new_state) is Pending


# -- handle_state_change and call_runner_target_handlers --------------------------------------


def test_target_handler_error_ends_the_run_failed() -> None:
    # verified against prefect 1.4.1: ENDRUN(Failed("Unexpected error while calling state
    # handlers: ValueError('x')")) carrying the error
    runner = FailingTargetRunner(ValueError("x"))
    with pytest.raises(ENDRUN) as info:
        runner.handle_state_change(Pending(), Running())
    final = info.value.state
    assert type(final) is Failed
    assert final.message == "Unexpected error while calling state handlers: ValueError('x')"
    assert isinstance(final.result, ValueError)


@pytest.mark.parametrize("exc", [ENDRUN(Success()), signals.PAUSE("wait")], ids=["ENDRUN", "PAUSE"])
def test_target_handler_endrun_and_pause_propagate(exc: BaseException) -> None:
    # verified against prefect 1.4.1
    with pytest.raises(type(exc)):
        FailingTargetRunner(exc).handle_state_change(Pending(), Running())


def test_target_handler_signal_gives_its_state() -> None:
    runner = FailingTargetRunner(signals.FAIL("no"))
    new = runner.handle_state_change(Pending(), Running())
    assert type(new) is Failed
    assert new.message == "no"


def test_runner_handlers_see_the_runner_and_may_replace_the_state() -> None:
    # verified against prefect 1.4.1: fn(runner, old, new); a returned state replaces new
    seen: list[tuple[Any, State, State]] = []
    replacement = Success("replaced")

    def handler(runner: Runner, old: State, new: State) -> State:
        seen.append((runner, old, new))
        return replacement

    runner = Runner(state_handlers=[handler])
    old, new = Pending(), Running()
    assert runner.handle_state_change(old, new) is replacement
    assert seen == [(runner, old, new)]


def test_handlers_returning_none_keep_the_state() -> None:
    # verified against prefect 1.4.1
    new = Running()
    assert Runner(state_handlers=[lambda *a: None]).handle_state_change(Pending(), new) is new


def test_a_handler_result_that_is_not_a_state_is_an_attribute_error() -> None:
    # as in prefect 1.4.1 the value is handed to the next handler first; flowcore raises
    # the AttributeError here, Prefect 1 on the next step (the run-level outcome is the
    # same: test_state_handlers.py)
    received: list[Any] = []
    runner = Runner(state_handlers=[lambda *a: True, lambda r, old, new: received.append(new)])
    with pytest.raises(ENDRUN) as info:
        runner.handle_state_change(Pending(), Running())
    assert received == [True]
    assert type(info.value.state) is Failed
    assert isinstance(info.value.state.result, AttributeError)
    runner.raise_on_exception = True
    with pytest.raises(AttributeError, match="returned True, which is not a State"):
        runner.handle_state_change(Pending(), Running())


def test_falsy_handler_results_keep_the_state() -> None:
    new = Running()
    assert Runner(state_handlers=[lambda *a: False]).handle_state_change(Pending(), new) is new


# -- call_state_handlers ------------------------------------------------------------------------


def test_decorated_step_calls_handlers_on_a_new_state() -> None:
    # verified against prefect 1.4.1 (its steps carry the same decorator)
    log: list[tuple[str, str]] = []
    runner = StepRunner(Running(), state_handlers=[transitions(log)])
    assert type(runner.step(Pending())) is Running
    assert log == [("Pending", "Running")]


def test_decorated_step_returning_its_state_calls_no_handler() -> None:
    log: list[tuple[str, str]] = []
    state = Pending()
    assert StepRunner(None, state_handlers=[transitions(log)]).step(state) is state
    assert log == []


def test_decorated_step_endrun_calls_handlers_then_propagates() -> None:
    log: list[tuple[str, str]] = []
    runner = StepRunner(ENDRUN(Success()), state_handlers=[transitions(log)])
    with pytest.raises(ENDRUN) as info:
        runner.step(Pending())
    assert type(info.value.state) is Success
    assert log == [("Pending", "Success")]


def test_decorated_step_signal_becomes_its_state() -> None:
    # verified against prefect 1.4.1: PAUSE raised by a step is Paused (only a handler's
    # PAUSE propagates)
    runner = StepRunner(signals.PAUSE("later"))
    new = runner.step(state=Pending())
    assert type(new) is Paused
    assert new.message == "later"


def test_decorated_step_error_becomes_failed() -> None:
    # verified against prefect 1.4.1: Failed("Unexpected error: ...") returned, not raised
    new = StepRunner(ZeroDivisionError("zero")).step(Pending())
    assert type(new) is Failed
    assert new.message == "Unexpected error: ZeroDivisionError('zero')"


def test_decorated_step_raises_in_debug_mode() -> None:
    runner = StepRunner(ZeroDivisionError("zero"))
    runner.raise_on_exception = True
    with pytest.raises(ZeroDivisionError):
        runner.step(Pending())


def test_step_helper_does_not_call_the_handlers_of_a_decorated_step_twice() -> None:
    log: list[tuple[str, str]] = []
    runner = StepRunner(Running(), state_handlers=[transitions(log)])
    assert type(runner._step(runner.step, Pending())) is Running
    assert (runner.calls, log) == (1, [("Pending", "Running")])


def test_step_helper_calls_handlers_around_a_plain_step() -> None:
    log: list[tuple[str, str]] = []
    runner = Runner(state_handlers=[transitions(log)])

    def plain(state: State) -> State:
        raise signals.SKIP("skip")

    assert type(runner._step(plain, Pending())) is Skipped
    assert log == [("Pending", "Skipped")]
