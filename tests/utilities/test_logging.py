"""Loggers, context attributes on records, and the handler configured from config."""

from __future__ import annotations

import builtins
import importlib.util
import io
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, context, task
from flowcore.utilities import logging as flowcore_logging
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.logging import configure_logging, get_logger


@pytest.fixture
def restore_flowcore_logger() -> Iterator[logging.Logger]:
    """Put the ``flowcore`` logger's handlers and level back after a reconfiguration."""
    logger = logging.getLogger("flowcore")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield logger
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def flowcore_handler(logger: logging.Logger) -> logging.Handler:
    (handler,) = [h for h in logger.handlers if getattr(h, "_flowcore", False)]
    return handler


def test_logger_names() -> None:
    assert get_logger().name == "flowcore"
    assert get_logger("FlowRunner").name == "flowcore.FlowRunner"
    assert get_logger("my_task").name == "flowcore.my_task"
    assert get_logger("x") is get_logger("x") is logging.getLogger("flowcore.x")


def test_the_flowcore_logger_has_one_handler_and_does_not_propagate() -> None:
    logger = logging.getLogger("flowcore")
    assert not logger.propagate
    assert len([h for h in logger.handlers if getattr(h, "_flowcore", False)]) == 1


@task
def chatty(x: int) -> int:
    context.logger.info("value is %s", x)
    return x


def test_runner_and_task_logger_names_during_a_run(logs: pytest.LogCaptureFixture) -> None:
    with Flow("logging flow") as flow:
        chatty(1)
    flow.run()
    names = {record.name for record in logs.records}
    assert {"flowcore.FlowRunner", "flowcore.TaskRunner", "flowcore.chatty"} <= names
    messages = [r.getMessage() for r in logs.records]
    assert "Beginning Flow run for 'logging flow'" in messages
    assert "Task 'chatty': Starting task run..." in messages
    assert "Task 'chatty': Finished task run for task with final state: 'Success'" in messages
    assert "value is 1" in messages


def test_mapped_children_log_under_their_full_name(logs: pytest.LogCaptureFixture) -> None:
    with Flow("mapped logging") as flow:
        chatty.map([10, 20])
    flow.run()
    user = [(r.name, r.getMessage()) for r in logs.records if r.getMessage().startswith("value")]
    assert sorted(user) == [
        ("flowcore.chatty[0]", "value is 10"),
        ("flowcore.chatty[1]", "value is 20"),
    ]


def test_records_carry_the_run_context(logs: pytest.LogCaptureFixture) -> None:
    with Flow("attrs") as flow:
        chatty(1)
    flow.run()
    for message in (
        "value is 1",
        "Task 'chatty': Starting task run...",
        "Task 'chatty': Finished task run for task with final state: 'Success'",
    ):
        (record,) = [r for r in logs.records if r.getMessage() == message]
        assert record.flow_name == "attrs"  # type: ignore[attr-defined]
        assert record.task_name == "chatty"  # type: ignore[attr-defined]
        assert record.task_slug == "chatty-1"  # type: ignore[attr-defined]
        assert record.flow_run_id and record.task_run_id  # type: ignore[attr-defined]
    (end,) = [r for r in logs.records if r.getMessage().startswith("Flow run SUCCESS")]
    assert end.flow_name == "attrs" and end.task_name is None  # type: ignore[attr-defined]


def test_log_attributes_from_config_are_added(logs: pytest.LogCaptureFixture) -> None:
    with set_temporary_config({"logging.log_attributes": ["customer"]}):
        with Flow("extra attrs") as flow:
            chatty(1)
        flow.run(context={"customer": "acme"})
    (record,) = [r for r in logs.records if r.getMessage() == "value is 1"]
    assert record.customer == "acme"  # type: ignore[attr-defined]


def test_default_format(restore_flowcore_logger: logging.Logger) -> None:
    handler = flowcore_handler(restore_flowcore_logger)
    record = logging.LogRecord("flowcore.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    line = handler.format(record)
    assert re.fullmatch(
        r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}\] INFO - flowcore\.x \| hello you", line
    ), line


def test_format_level_and_extra_loggers_come_from_config(
    restore_flowcore_logger: logging.Logger,
) -> None:
    extra = logging.getLogger("flowcore_test_extra_lib")
    settings: dict[str, Any] = {
        "logging.format": "%(levelname)s|%(name)s|%(message)s",
        "logging.level": "debug",
        "logging.extra_loggers": ["flowcore_test_extra_lib"],
    }
    try:
        with set_temporary_config(settings):
            configure_logging()
        handler = flowcore_handler(restore_flowcore_logger)
        record = logging.LogRecord("flowcore.y", logging.WARNING, __file__, 1, "msg", None, None)
        assert handler.format(record) == "WARNING|flowcore.y|msg"
        assert restore_flowcore_logger.level == logging.DEBUG
        assert handler in extra.handlers and extra.level == logging.DEBUG
    finally:
        for h in list(extra.handlers):
            extra.removeHandler(h)
        extra.setLevel(logging.NOTSET)


def test_the_engines_records_say_where_they_were_logged(logs: pytest.LogCaptureFixture) -> None:
    # as logger.info places a record (Prefect 1's say task_runner.py, run, a line); they
    # said "(flowcore)", line 0, no function, to a handler that shows or ships them
    with Flow("where") as flow:
        chatty(1)
    flow.run()
    (start,) = [r for r in logs.records if r.getMessage() == "Task 'chatty': Starting task run..."]
    assert Path(start.pathname).name == "task_runner.py" and start.lineno > 0
    assert start.funcName == "_run_initialized" and start.module == "task_runner"
    (end,) = [r for r in logs.records if r.getMessage().startswith("Flow run SUCCESS")]
    assert Path(end.pathname).name == "flow_runner.py" and end.funcName and end.lineno > 0


def test_extra_loggers_set_in_code_and_reconfiguring_keeps_one_handler_each(
    restore_flowcore_logger: logging.Logger,
) -> None:
    """Prefect 1's ``configure_extra_loggers`` after changing the list in code; each extra
    logger holds the current handler only, however often logging is configured again."""
    extra = logging.getLogger("flowcore_test_extra_code")
    try:
        with set_temporary_config({"logging.extra_loggers": ["flowcore_test_extra_code"]}):
            flowcore_logging.configure_extra_loggers()
            assert extra.handlers == [flowcore_handler(restore_flowcore_logger)]
            configure_logging()
            configure_logging()
            assert extra.handlers == [flowcore_handler(restore_flowcore_logger)]
    finally:
        for h in list(extra.handlers):
            extra.removeHandler(h)
        extra.setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("given", "level"), [(10, 10), ("10", 10), ("warning", 30), (" Error ", 40)]
)
def test_the_level_is_a_name_or_a_number(
    restore_flowcore_logger: logging.Logger, given: object, level: int
) -> None:
    with set_temporary_config({"logging.level": given}):
        configure_logging()
    assert restore_flowcore_logger.level == level


def test_a_level_that_is_none_names_the_setting(restore_flowcore_logger: logging.Logger) -> None:
    with set_temporary_config({"logging.level": "VERBOSE"}), pytest.raises(ValueError) as info:
        configure_logging()
    assert str(info.value) == (
        "config logging.level is 'VERBOSE', which is not a logging level; set it (in "
        "~/.flowcore/config.toml, or FLOWCORE__LOGGING__LEVEL) to DEBUG, INFO, WARNING, "
        "ERROR or CRITICAL, or to a number"
    )


def test_reconfiguring_replaces_the_handler(restore_flowcore_logger: logging.Logger) -> None:
    configure_logging()
    configure_logging()
    assert len([h for h in restore_flowcore_logger.handlers if getattr(h, "_flowcore", False)]) == 1


def test_log_helper_respects_levels(logs: pytest.LogCaptureFixture) -> None:
    logger = get_logger("helper")
    logs.set_level(logging.INFO, logger="flowcore")
    flowcore_logging.log(logger, logging.DEBUG, "hidden")
    flowcore_logging.log(logger, logging.INFO, "shown")
    assert [r.getMessage() for r in logs.records if r.name == "flowcore.helper"] == ["shown"]


def test_a_handler_on_a_task_logger_sees_the_run_context() -> None:
    """Prefect 1 injected context attributes into every record; so does flowcore, for
    records logged on flowcore loggers, whatever handler receives them."""
    import logging

    from flowcore import Flow, context, task

    seen: list[tuple[str, object, object]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(
                (
                    record.name,
                    getattr(record, "flow_name", None),
                    getattr(record, "task_name", None),
                )
            )

    @task
    def noisy_task_for_logging() -> None:
        context.logger.info("hello")

    handler = Recorder()
    logger = logging.getLogger("flowcore.noisy_task_for_logging")
    logger.addHandler(handler)
    try:
        with Flow("logging-flow") as flow:
            noisy_task_for_logging()
        flow.run()
    finally:
        logger.removeHandler(handler)
    assert seen == [("flowcore.noisy_task_for_logging", "logging-flow", "noisy_task_for_logging")]


def test_redirect_to_log_logs_each_non_blank_write(caplog: pytest.LogCaptureFixture) -> None:
    # Prefect 1.4.1's RedirectToLog: one INFO line per non-blank write, as written, on the
    # `stdout` logger; it is a text stream, so redirect_stdout and click accept it.
    import contextlib

    caplog.set_level(logging.INFO)
    stream = flowcore_logging.RedirectToLog()
    with contextlib.redirect_stdout(stream):
        print("first")
        print("")
        print("second", end="")
    stream.flush()
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert lines == [("flowcore.stdout", "first"), ("flowcore.stdout", "second")]
    with pytest.raises(TypeError, match="string argument expected"):
        stream.write(b"bytes")  # type: ignore[arg-type]


# -- tracebacks: flowcore's formatter writes what logging's own would ----------------------


def _raise_deep(n: int) -> int:
    if n == 0:
        values: dict[str, int] = {}
        return values["missing"] + 1
    return _raise_deep(n - 1)


def _raise_chained() -> None:
    try:
        _raise_deep(2)
    except KeyError as exc:
        raise ValueError("wrapped") from exc


def _raise_in_handler() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        _raise_chained()


def _recurse(n: int) -> int:
    return _recurse(n + 1)


def _raise_group() -> None:
    group = getattr(builtins, "ExceptionGroup", None)
    if group is None:  # Python 3.10: no exception groups; a plain chain instead
        _raise_in_handler()
    else:
        raise group("several", [ValueError("one"), TypeError("two")])


@pytest.mark.parametrize(
    "raiser",
    [lambda: _raise_deep(4), _raise_chained, _raise_in_handler, lambda: _recurse(0), _raise_group],
)
def test_tracebacks_are_what_logging_writes_and_stay_so_when_met_again(raiser: Any) -> None:
    formatter = flowcore_logging._Formatter("%(message)s", "%Y")
    for _ in range(2):  # the second time, the frames' lines come from the memo
        try:
            raiser()
        except BaseException:
            info = sys.exc_info()
        assert formatter.formatException(info) == logging.Formatter().formatException(info)


def test_a_frame_whose_source_changed_is_formatted_anew(tmp_path: Path) -> None:
    module = tmp_path / "edited_module_for_tracebacks.py"
    module.write_text("def fail(values):\n    return values['a'] + values['b']\n")
    spec = importlib.util.spec_from_file_location("edited_module_for_tracebacks", module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    formatter = flowcore_logging._Formatter("%(message)s", "%Y")

    def formatted() -> tuple[str, str]:
        try:
            loaded.fail({"a": 1})
        except KeyError:
            info = sys.exc_info()
        return formatter.formatException(info), logging.Formatter().formatException(info)

    before, expected = formatted()
    assert before == expected and "values['a'] + values['b']" in before
    # the same positions, other text and indentation (the code object is the old one)
    module.write_text("def fail(values):\n  return  values['x'] + values['y'] \n")
    os.utime(module, (time.time() + 5, time.time() + 5))
    after, expected = formatted()
    assert after == expected and "values['x']" in after and after != before


def _raise_with(message: str) -> None:
    raise ValueError(message)


def test_a_plain_traceback_met_again_is_remembered_whole_with_its_message() -> None:
    """(On 3.11 and 3.12, which show one source line per frame; other versions format
    every traceback anew, with the same text.)"""
    remembered = (3, 11) <= sys.version_info < (3, 13)
    formatter = flowcore_logging._Formatter("%(message)s", "%Y")
    texts = []
    for message in ("first", "first", "second"):
        try:
            _raise_with(message)
        except ValueError:
            info = sys.exc_info()
        key = flowcore_logging._traceback_key(info[1], info[2])  # type: ignore[arg-type]
        assert (key is not None) == remembered
        texts.append(formatter.formatException(info))
        assert texts[-1] == logging.Formatter().formatException(info)
        if key is not None:
            assert flowcore_logging._TRACEBACKS.get(key) == texts[-1]
    assert texts[0] == texts[1] and texts[2].endswith("ValueError: second")


@pytest.mark.parametrize("raiser", [_raise_chained, _raise_in_handler, lambda: _recurse(0)])
def test_chained_and_deep_tracebacks_are_not_remembered_whole(raiser: Any) -> None:
    try:
        raiser()
    except BaseException:
        info = sys.exc_info()
    assert flowcore_logging._traceback_key(info[1], info[2]) is None  # type: ignore[arg-type]


def test_an_error_line_with_a_traceback_is_what_logging_writes_and_reaches_the_sinks(
    restore_flowcore_logger: logging.Logger,
) -> None:
    handler = flowcore_handler(restore_flowcore_logger)
    assert isinstance(handler, logging.StreamHandler)
    # as configured, without the handlers pytest adds to capture records (the fixture puts
    # them back)
    restore_flowcore_logger.handlers[:] = [handler]
    restore_flowcore_logger.propagate = False
    stream = io.StringIO()
    handler.setStream(stream)
    seen: list[tuple[str, int, str]] = []

    def sink(name: str, level: int, message: str, created: float) -> None:
        seen.append((name, level, message))

    flowcore_logging.add_line_sink(sink)
    try:
        try:
            _raise_with("broken")
        except ValueError as exc:
            error = exc
        logger = get_logger("TaskRunner")
        assert flowcore_logging._sole_handler(logger, logging.ERROR) is handler  # the short path
        flowcore_logging.log(logger, logging.ERROR, "Task 'x': failed!", sinks=True, exc_info=error)
    finally:
        flowcore_logging.remove_line_sink(sink)
    record = logging.LogRecord(
        "flowcore.TaskRunner", logging.ERROR, __file__, 1, "Task 'x': failed!", None,
        (ValueError, error, error.__traceback__),
    )  # fmt: skip
    expected = logging.Formatter(handler.formatter._fmt, handler.formatter.datefmt).format(record)  # type: ignore[union-attr]
    written = stream.getvalue()
    # the same text but for the second of the time stamp, which may have turned over
    assert written.split("] ", 1)[1] == expected.split("] ", 1)[1] + "\n"
    assert "ValueError: broken" in written and written.count("Traceback") == 1
    assert seen == [("flowcore.TaskRunner", logging.ERROR, expected.split(" | ", 1)[1])]


PIPED_FLOW = """
import os, sys, time
from flowcore import Flow, task

@task
def wait():  # until the reader has gone: the lines after it meet a closed pipe
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
    return list(range(30))

@task
def inc(x):
    return x + 1

with Flow("piped") as flow:
    inc.map(wait())
state = flow.run()
with open(sys.argv[1], "w") as out:
    out.write(type(state).__name__)
"""


def test_a_reader_that_closes_stdout_stops_the_lines_not_the_run(tmp_path: Path) -> None:
    """``python flow.py | head -1``: once stdout's reader is gone, one line on stderr says
    so and no more lines are written (logging printed a traceback for each of them); the
    run goes on to its end."""
    import subprocess

    script = tmp_path / "piped.py"
    script.write_text(PIPED_FLOW)
    marker = tmp_path / "state"
    env = {**os.environ, "FLOWCORE__RUNS__STORE": "none"}
    closed = tmp_path / "closed"
    process = subprocess.Popen(
        [sys.executable, str(script), str(marker), str(closed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as `head -1` does
    closed.touch()
    with process.stderr:
        errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, errors
    assert b"Flow run" in first
    assert marker.read_text() == "Success"
    assert "Traceback" not in errors and "Logging error" not in errors, errors
    assert errors.count("broken pipe") == 1, errors
