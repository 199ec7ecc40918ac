"""The public namespace is part of the Prefect 1 compatibility contract."""

from __future__ import annotations

import importlib

import pytest

import flowcore


def test_top_level_all() -> None:
    assert set(flowcore.__all__) >= {
        "Flow",
        "Task",
        "Parameter",
        "task",
        "tags",
        "mapped",
        "unmapped",
        "flatten",
        "context",
        "config",
        "case",
        "apply_map",
        "resource_manager",
    }
    for name in flowcore.__all__:
        assert hasattr(flowcore, name), name


MODULE_PATHS = [
    ("flowcore.core.task", ["Task"]),
    ("flowcore.core.flow", ["Flow"]),
    ("flowcore.core.edge", ["Edge", "Task"]),
    ("flowcore.core.parameter", ["Parameter", "DateTimeParameter"]),
    (
        "flowcore.engine.state",
        [
            "State",
            "Pending",
            "Scheduled",
            "Paused",
            "Resume",
            "Retrying",
            "Running",
            "Finished",
            "Success",
            "Cached",
            "Mapped",
            "Skipped",
            "Looped",
            "Failed",
            "TimedOut",
            "TriggerFailed",
            "ValidationFailed",
            "Submitted",
            "Queued",
            "ClientFailed",
            "Cancelled",
            "Cancelling",
        ],
    ),
    (
        "flowcore.engine.signals",
        [
            "FAIL",
            "TRIGGERFAIL",
            "VALIDATIONFAIL",
            "SUCCESS",
            "RETRY",
            "SKIP",
            "PAUSE",
            "LOOP",
            "ENDRUN",
            "PrefectStateSignal",
            "signal_from_state",
        ],
    ),
    ("flowcore.engine.runner", ["ENDRUN", "Runner"]),
    ("flowcore.engine.task_runner", ["TaskRunner"]),
    ("flowcore.engine.flow_runner", ["FlowRunner"]),
    ("flowcore.engine", ["FlowRunner", "TaskRunner"]),
    (
        "flowcore.engine.cache_validators",
        [
            "never_use",
            "duration_only",
            "all_inputs",
            "all_parameters",
            "partial_inputs_only",
            "partial_parameters_only",
        ],
    ),
    (
        "flowcore.engine.serializers",
        ["PickleSerializer", "JSONSerializer", "DateTimeSerializer", "CompressedSerializer"],
    ),
    ("flowcore.engine.result", ["Result", "NoResult"]),
    ("flowcore.engine.results", ["PrefectResult", "ConstantResult"]),
    ("flowcore.executors", ["LocalExecutor", "LocalDaskExecutor", "DaskExecutor"]),
    ("flowcore.executors.dask", ["LocalDaskExecutor", "DaskExecutor", "DaskTaskError"]),
    (
        "flowcore.triggers",
        [
            "all_successful",
            "all_failed",
            "all_finished",
            "always_run",
            "any_successful",
            "any_failed",
            "some_successful",
            "some_failed",
            "not_all_skipped",
            "manual_only",
        ],
    ),
    ("flowcore.tasks.core.function", ["FunctionTask"]),
    ("flowcore.tasks.core.constants", ["Constant"]),
    ("flowcore.tasks.core.collections", ["List", "Tuple", "Set", "Dict"]),
    (
        "flowcore.tasks.core.operators",
        [
            "Add",
            "Sub",
            "Mul",
            "Div",
            "FloorDiv",
            "Mod",
            "Pow",
            "And",
            "Or",
            "Not",
            "Equal",
            "NotEqual",
            "GreaterThan",
            "GreaterThanOrEqual",
            "LessThan",
            "LessThanOrEqual",
            "GetItem",
            "GetAttr",
        ],
    ),
    (
        "flowcore.utilities.tasks",
        ["task", "as_task", "tags", "pause_task", "unmapped", "apply_map"],
    ),
    ("flowcore.tasks.control_flow", ["case", "switch", "ifelse", "merge", "FilterTask"]),
    ("flowcore.tasks.control_flow.case", ["case"]),
    (
        "flowcore.tasks.control_flow.conditional",
        ["switch", "ifelse", "merge", "CompareValue", "Merge"],
    ),
    ("flowcore.tasks.control_flow.filter", ["FilterTask"]),
    (
        "flowcore.tasks.core.resource_manager",
        ["resource_manager", "ResourceManager", "resource_cleanup_trigger"],
    ),
    (
        "flowcore.schedules",
        [
            "Schedule",
            "IntervalSchedule",
            "CronSchedule",
            "RRuleSchedule",
            "clocks",
            "filters",
            "adjustments",
        ],
    ),
    (
        "flowcore.schedules.clocks",
        ["ClockEvent", "Clock", "IntervalClock", "CronClock", "DatesClock", "RRuleClock"],
    ),
    (
        "flowcore.schedules.filters",
        [
            "on_datetime",
            "between_datetimes",
            "on_date",
            "between_dates",
            "at_time",
            "between_times",
            "is_weekday",
            "is_weekend",
            "is_month_start",
            "is_month_end",
            "is_day_of_week",
        ],
    ),
    ("flowcore.schedules.adjustments", ["add", "next_weekday"]),
    ("flowcore.utilities.edges", ["EdgeAnnotation", "mapped", "unmapped", "flatten"]),
    ("flowcore.utilities.context", ["Context", "context"]),
    ("flowcore.utilities.configuration", ["set_temporary_config"]),
    ("flowcore.utilities.debug", ["raise_on_exception", "is_serializable"]),
    # Prefect 1.4.1's public names of prefect.utilities.notifications (checked there)
    (
        "flowcore.utilities.notifications",
        [
            "callback_factory",
            "gmail_notifier",
            "jira_notifier",
            "slack_message_formatter",
            "slack_notifier",
            "snowflake_logger",
            "snowflake_message_formatter",
        ],
    ),
    ("flowcore.utilities.executors", ["run_with_heartbeat", "run_with_timeout"]),
    ("flowcore.utilities.logging", ["get_logger"]),
    ("flowcore.utilities.collections", ["DotDict", "merge_dicts"]),
    ("flowcore.exceptions", ["PrefectSignal", "TaskTimeoutSignal", "PrefectException"]),
]


@pytest.mark.parametrize("module, names", MODULE_PATHS)
def test_prefect1_module_paths(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    for name in names:
        assert hasattr(imported, name), f"{module}.{name}"


def test_signals_are_base_exceptions_not_exceptions() -> None:
    from flowcore.engine import signals

    assert not issubclass(signals.FAIL, Exception)
    assert issubclass(signals.FAIL, BaseException)
    assert not issubclass(signals.ENDRUN, Exception)


def test_run_with_heartbeat_leaves_the_method_as_it_is() -> None:
    """Prefect 1's tests import it to decorate a runner's run; without Server it does nothing."""
    from flowcore.utilities.executors import run_with_heartbeat

    def run(self: object) -> str:
        return "ran"

    assert run_with_heartbeat(run) is run


SUBMODULE_PATHS = """
import sys
import flowcore

for path in sys.argv[1:]:
    node = flowcore
    for part in path.split(".")[1:]:
        node = getattr(node, part)
    # (tasks.control_flow.case is the case class, as in Prefect 1: the name shadows its module)
    assert node.__name__ == path or not isinstance(node, type(sys)), (path, node)
try:
    flowcore.engine.no_such_module
except AttributeError as exc:
    print(exc)
print(sorted(m for m in ("dask", "sqlalchemy", "distributed", "boto3") if m in sys.modules))
"""


def test_a_module_path_works_as_attributes_after_import_flowcore_alone() -> None:
    """As after ``import prefect``: ``flowcore.engine.results.LocalResult``,
    ``flowcore.utilities.configuration.set_temporary_config`` and the others resolve
    with no import of their own (each submodule is imported on first use, so ``import
    flowcore`` still imports none of them)."""
    import subprocess
    import sys

    paths = sorted({module for module, _ in MODULE_PATHS} - {"flowcore.exceptions"})
    done = subprocess.run(
        [sys.executable, "-c", SUBMODULE_PATHS, *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "module 'flowcore.engine' has no attribute 'no_such_module'",
        "[]",
    ]
