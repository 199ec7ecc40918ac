"""TaskRunner.run end to end: signals raised inside tasks, errors, logs (reference 4, 6.2, 6.3)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import pytest

from flowcore import Flow, Task, context, task
from flowcore.core.edge import Edge
from flowcore.engine import signals
from flowcore.engine.result import Result
from flowcore.engine.state import (
    Failed,
    Paused,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TriggerFailed,
    ValidationFailed,
)
from flowcore.engine.task_runner import TaskRunner
from flowcore.utilities.debug import raise_on_exception
from flowcore.utilities.logging import LinesToLog


def upstream(t: Task, **states: State) -> dict[Edge, State]:
    return {Edge(Task(name=f"up_{key}"), t, key=key): state for key, state in states.items()}


def test_run_without_arguments_succeeds() -> None:
    @task
    def one() -> int:
        return 1

    state = TaskRunner(one).run()
    assert type(state) is Success
    assert state.message == "Task run succeeded."
    assert state.result == 1


def test_run_passes_upstream_results_as_arguments() -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    state = TaskRunner(add).run(
        upstream_states=upstream(add, x=Success(result=1), y=Success(result=2))
    )
    assert state.result == 3


def test_unkeyed_upstream_gives_no_argument() -> None:
    @task
    def nothing() -> str:
        return "ran"

    ups = {Edge(Task(), nothing): Success(result=5)}
    assert TaskRunner(nothing).run(upstream_states=ups).result == "ran"


def test_unfinished_upstream_returns_the_given_state_without_running() -> None:
    calls: list[int] = []

    @task
    def t(x: int) -> None:
        calls.append(x)

    start = Pending("waiting")
    state = TaskRunner(t).run(state=start, upstream_states=upstream(t, x=Retrying()))
    assert state is start
    assert calls == []


def test_finished_state_is_returned_without_running() -> None:
    calls: list[int] = []

    @task
    def t() -> None:
        calls.append(1)

    done = Success(result=9)
    assert TaskRunner(t).run(state=done) is done
    assert calls == []


def test_exception_becomes_failed_and_is_logged(logs: pytest.LogCaptureFixture) -> None:
    error = ValueError("boom")

    @task
    def bad() -> None:
        raise error

    state = TaskRunner(bad).run()
    assert type(state) is Failed
    assert state.message == "Error during execution of task: ValueError('boom')"
    assert state.result is error
    [record] = [r for r in logs.records if "Exception encountered" in r.getMessage()]
    assert record.getMessage() == "Task 'bad': Exception encountered during task execution!"
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


def test_run_logs_start_and_finish(logs: pytest.LogCaptureFixture) -> None:
    @task
    def one() -> int:
        return 1

    TaskRunner(one).run(context={"map_index": 3})
    info = [r for r in logs.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in info] == [
        "Task 'one[3]': Starting task run...",
        "Task 'one[3]': Finished task run for task with final state: 'Success'",
    ]
    assert {r.name for r in info} == {"flowcore.TaskRunner"}


def test_run_does_not_leak_task_keys_into_the_caller_context() -> None:
    @task
    def one() -> int:
        return context.task_name == "one"

    assert TaskRunner(one).run().result is True
    assert "task_name" not in context
    assert "task_run_count" not in context


# -- signals inside run() ---------------------------------------------------------------------


def test_fail_signal() -> None:
    @task
    def t() -> None:
        raise signals.FAIL("nope")

    state = TaskRunner(t).run()
    assert type(state) is Failed
    assert state.message == "nope"
    assert isinstance(state.result, signals.FAIL)


def test_signal_is_not_swallowed_by_except_exception() -> None:
    @task
    def t() -> str:
        try:
            raise signals.FAIL("escapes")
        except Exception:
            return "swallowed"

    assert type(TaskRunner(t).run()) is Failed


def test_success_signal_with_result() -> None:
    @task
    def t() -> None:
        raise signals.SUCCESS("early", result=5)

    state = TaskRunner(t).run()
    assert type(state) is Success
    assert (state.message, state.result) == ("early", 5)


def test_success_signal_without_result_keeps_the_signal() -> None:
    @task
    def t() -> None:
        raise signals.SUCCESS("early")

    state = TaskRunner(t).run()
    assert type(state) is Success
    assert isinstance(state.result, signals.SUCCESS)


def test_skip_signal() -> None:
    @task
    def t() -> None:
        raise signals.SKIP("not needed")

    state = TaskRunner(t).run()
    assert type(state) is Skipped
    assert state.message == "not needed"
    assert isinstance(state.result, signals.SKIP)


def test_retry_signal_ignores_max_retries() -> None:
    @task
    def t(x: int) -> None:
        raise signals.RETRY("again")

    state = TaskRunner(t).run(upstream_states=upstream(t, x=Success(result=1)))
    assert type(state) is Retrying
    assert state.message == "again"
    assert state.run_count == 1
    assert {k: r.value for k, r in (state.cached_inputs or {}).items()} == {"x": 1}


def test_pause_signal() -> None:
    @task
    def t() -> None:
        raise signals.PAUSE("wait for me")

    state = TaskRunner(t).run()
    assert type(state) is Paused
    assert state.message == "wait for me"
    assert state.start_time is None


def test_triggerfail_inside_run() -> None:
    @task
    def t() -> None:
        raise signals.TRIGGERFAIL("odd")

    state = TaskRunner(t).run()
    assert type(state) is TriggerFailed
    assert state.message == "odd"


def test_validationfail_inside_run() -> None:
    @task
    def t() -> None:
        raise signals.VALIDATIONFAIL("invalid output")

    state = TaskRunner(t).run()
    assert type(state) is ValidationFailed
    assert isinstance(state.result, signals.VALIDATIONFAIL)


def test_signal_is_logged(logs: pytest.LogCaptureFixture) -> None:
    @task
    def t() -> None:
        raise signals.SKIP("nope")

    TaskRunner(t).run()
    assert "SKIP signal raised: SKIP('nope')" in logs.messages


# -- errors outside the task body -------------------------------------------------------------


def test_error_outside_a_step_is_unexpected_error_while_running_task() -> None:
    @task(task_run_name="{missing}")
    def t() -> int:
        return 1

    state = TaskRunner(t).run()
    assert type(state) is Failed
    assert state.message == "Task 't': Unexpected error while running task: KeyError('missing')"
    assert isinstance(state.result, KeyError)


def test_error_inside_a_step_is_unexpected_error_and_not_retried() -> None:
    # a target on a Result without storage: the step fails, the task is not run or retried
    from datetime import timedelta

    calls: list[int] = []

    @task(target="out.txt", max_retries=2, retry_delay=timedelta(0))
    def t() -> int:
        calls.append(1)
        return 1

    state = TaskRunner(t).run()
    assert type(state) is Failed
    assert str(state.message).startswith("Unexpected error: ResultNotImplementedError(")
    assert calls == []


def test_raise_on_exception_propagates_errors() -> None:
    @task
    def bad() -> None:
        raise ValueError("debug me")

    with raise_on_exception(), pytest.raises(ValueError, match="debug me"):
        TaskRunner(bad).run()


def test_raise_on_exception_still_turns_signals_into_states() -> None:
    # as in Prefect 1.4.1: signals are how tasks choose states, not errors
    @task
    def skipper() -> None:
        raise signals.SKIP("fine")

    with raise_on_exception():
        assert type(TaskRunner(skipper).run()) is Skipped


# -- runner construction ----------------------------------------------------------------------


def test_runner_result_prefers_task_result() -> None:
    own = Result(location="own")
    t = Task(result=own)
    assert TaskRunner(t, flow_result=Result(location="flow")).result is own


def test_runner_result_copies_flow_result() -> None:
    flow_result = Result(location="flow")
    runner = TaskRunner(Task(), flow_result=flow_result)
    assert runner.result is not flow_result
    assert runner.result.location == "flow"


def test_runner_result_defaults_to_base_result() -> None:
    assert type(TaskRunner(Task()).result) is Result


def test_runner_rejects_non_sequence_state_handlers() -> None:
    with pytest.raises(TypeError):
        TaskRunner(Task(), state_handlers=lambda *a: None)  # type: ignore[arg-type]


def test_log_stdout_sends_prints_to_the_task_logger(logs: pytest.LogCaptureFixture) -> None:
    @task(log_stdout=True)
    def chatty() -> int:
        print("hello")
        print("")
        print("world")
        return 1

    assert TaskRunner(chatty).run().result == 1
    task_lines = [r.getMessage() for r in logs.records if r.name == "flowcore.chatty"]
    assert task_lines == ["hello", "world"]


def test_log_stdout_logs_each_line_as_it_is_printed(logs: pytest.LogCaptureFixture) -> None:
    """A line is logged when its newline is printed, so it comes in order with what the
    task logs itself (Prefect 1 logs each write); an unfinished last line is logged at the
    end, and a failing task's output is logged before its failure."""

    @task(log_stdout=True)
    def chatty() -> None:
        print("step", 1)
        context.logger.info("between")
        sys.stdout.write("step 2 ")
        sys.stdout.write("done\n\n")
        sys.stdout.write("no newline")
        raise ValueError("bad")

    assert isinstance(TaskRunner(chatty).run(), Failed)
    lines = [r.getMessage() for r in logs.records if r.name == "flowcore.chatty"]
    assert lines == ["step 1", "between", "step 2 done", "no newline"]
    assert not isinstance(sys.stdout, LinesToLog)


def test_log_stdout_on_threads_logs_each_line_under_its_own_task_run(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Tasks printing at once on threads: each line goes to the log of the task run that
    printed it, and ``sys.stdout`` is the stream it was once the run ends (swapping the
    process's one ``sys.stdout`` per task run mixed the children's lines up, and left it
    redirected when the runs ended out of order)."""
    from flowcore.executors import LocalDaskExecutor

    started = threading.Barrier(4, timeout=10)

    @task(log_stdout=True)
    def shout(i: int) -> int:
        started.wait()  # all four are printing at once
        for n in range(3):
            print(f"child {i} line {n}")
            time.sleep(0.01 * (4 - i))
        return i

    with Flow("shouts") as flow:
        shout.map(list(range(4)))
    before = sys.stdout
    state = flow.run(executor=LocalDaskExecutor("threads", num_workers=4))
    assert state.is_successful(), state
    assert sys.stdout is before
    for i in range(4):
        lines = [r.getMessage() for r in logs.records if r.name == f"flowcore.shout[{i}]"]
        assert lines == [f"child {i} line {n}" for n in range(3)], (i, lines)


def test_log_stdout_logs_what_a_thread_the_task_started_prints(
    logs: pytest.LogCaptureFixture,
) -> None:
    # a thread the task starts has no context of the task's: its prints went to the real
    # stdout; with one task run logging stdout they are its (as Prefect 1's redirect did)
    @task(log_stdout=True)
    def chatty() -> None:
        helper = threading.Thread(target=lambda: print("from a helper thread"))
        helper.start()
        helper.join()
        print("from the task")

    assert TaskRunner(chatty).run().is_successful()
    lines = [r.getMessage() for r in logs.records if r.name == "flowcore.chatty"]
    assert lines == ["from a helper thread", "from the task"]


def test_a_task_that_does_not_log_stdout_prints_to_stdout_beside_one_that_does(
    logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # (its print went to the other task's log: the one task run logging stdout took the
    # prints of every thread without a stream of its own)
    from flowcore.executors import LocalDaskExecutor

    started = threading.Event()

    @task(log_stdout=True)
    def logging_task() -> None:
        started.set()
        time.sleep(0.3)

    @task
    def plain() -> None:
        started.wait(10)
        print("PLAIN PRINT")

    with Flow("both") as flow:
        logging_task()
        plain()
    assert flow.run(executor=LocalDaskExecutor("threads", num_workers=2)).is_successful()
    assert "PLAIN PRINT" in capsys.readouterr().out
    assert not [r for r in logs.records if r.getMessage() == "PLAIN PRINT"]


_TOGGLING = """
import io, logging, sys, threading, time
from flowcore.utilities.logging import stdout_to_log

log = logging.getLogger("toggling")
log.propagate = False
sys.setswitchinterval(1e-6)
stop = False

def printer():
    while not stop:
        print("p")

def toggler():
    while not stop:
        with stdout_to_log(log):
            pass

sys.stdout = io.StringIO()
threads = [threading.Thread(target=f) for f in (printer, toggler, toggler)]
for t in threads:
    t.start()
time.sleep(2)
stop = True
for t in threads:
    t.join()
"""


def test_prints_while_task_runs_start_and_end_do_not_crash_the_process() -> None:
    # a router taken out of sys.stdout was freed while another thread's print was in it
    # (Python's print keeps no reference of its own): a segmentation fault
    import subprocess

    done = subprocess.run([sys.executable, "-c", _TOGGLING], capture_output=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr.decode()[-2000:])


def test_running_state_given_is_not_rerun() -> None:
    calls: list[Any] = []

    @task
    def t() -> None:
        calls.append(1)

    running = Running()
    assert TaskRunner(t).run(state=running) is running
    assert calls == []
