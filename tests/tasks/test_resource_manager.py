"""``resource_manager``: init / setup / cleanup tasks and their wiring (reference 12.5)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import flowcore
from flowcore import Flow, Parameter, case, resource_manager, task
from flowcore.core.edge import Edge
from flowcore.engine import signals
from flowcore.engine.state import (
    Cached,
    Failed,
    Pending,
    Retrying,
    Skipped,
    State,
    Success,
    TriggerFailed,
)
from flowcore.tasks.core.constants import Constant
from flowcore.tasks.core.resource_manager import (
    ResourceCleanupTask,
    ResourceContext,
    ResourceInitTask,
    ResourceManager,
    ResourceSetupTask,
    resource_cleanup_trigger,
)


class Recorder:
    """What the resource classes below did, in order."""

    calls: list[Any] = []


@pytest.fixture(autouse=True)
def fresh_recorder() -> None:
    Recorder.calls = []


@resource_manager
class Connection:
    def __init__(self, dsn: str, retries: int = 0) -> None:
        self.dsn = dsn
        Recorder.calls.append(("init", dsn))

    def setup(self) -> dict[str, str]:
        Recorder.calls.append("setup")
        return {"dsn": self.dsn}

    def cleanup(self, resource: Any) -> None:
        Recorder.calls.append(("cleanup", resource))


@resource_manager(name="Scratch")
class NoSetup:
    def __init__(self) -> None:
        Recorder.calls.append("init")

    def cleanup(self, resource: Any) -> None:
        Recorder.calls.append(("cleanup", resource))


@task
def use(conn: dict[str, str]) -> str:
    Recorder.calls.append("use")
    return conn["dsn"].upper()


@task
def fail(conn: Any) -> None:
    Recorder.calls.append("fail")
    raise ValueError("query failed")


@task
def identity(x: Any) -> Any:
    return x


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


def tasks_of(flow: Flow, cls: type) -> list[Any]:
    return [t for t in flow.sorted_tasks() if type(t) is cls]


# -- building -------------------------------------------------------------------------------


def test_prefect1_paths() -> None:
    assert flowcore.resource_manager is resource_manager
    assert isinstance(Connection, ResourceManager)
    assert repr(Connection) == "<ResourceManager: Connection>"


def test_calling_the_manager_builds_three_tasks() -> None:
    with Flow("rm") as flow:
        context_block = Connection("db://x")
    assert isinstance(context_block, ResourceContext)
    (init,) = tasks_of(flow, ResourceInitTask)
    (setup,) = tasks_of(flow, ResourceSetupTask)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert (init.name, setup.name, cleanup.name) == (
        "Connection",
        "Connection.setup",
        "Connection.cleanup",
    )
    assert (setup.checkpoint, cleanup.checkpoint) == (False, False)
    assert cleanup.trigger is resource_cleanup_trigger
    assert cleanup.skip_on_upstream_skip is False
    assert flow.constants[init] == {"dsn": "db://x"}
    assert {(e.upstream_task, e.key) for e in flow.edges_to(setup)} == {(init, "mgr")}
    assert {(e.upstream_task, e.key) for e in flow.edges_to(cleanup)} == {
        (init, "mgr"),
        (setup, "resource"),
    }
    assert (context_block.init_task, context_block.setup_task, context_block.cleanup_task) == (
        init,
        setup,
        cleanup,
    )


def test_the_with_block_yields_the_setup_task_or_none() -> None:
    with Flow("rm"):
        with Connection("db://x") as conn:
            assert isinstance(conn, ResourceSetupTask)
        with NoSetup() as nothing:
            assert nothing is None


def test_a_class_without_setup_gets_init_and_cleanup_only() -> None:
    with Flow("rm") as flow:
        with NoSetup():
            inside = identity(1)
    assert tasks_of(flow, ResourceSetupTask) == []
    (init,) = tasks_of(flow, ResourceInitTask)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert (init.name, cleanup.name) == ("Scratch", "Scratch.cleanup")
    assert flow.upstream_tasks(inside) == set()
    assert flow.downstream_tasks(inside) == {cleanup}
    state = run(flow)
    assert Recorder.calls == ["init", ("cleanup", None)]
    assert type(state) is Success


def test_task_kwargs_reach_each_task() -> None:
    managed = resource_manager(
        Connection.resource_class,
        name="DB",
        init_task_kwargs={"tags": ["init"]},
        setup_task_kwargs={"max_retries": 1, "retry_delay": timedelta(seconds=1)},
        cleanup_task_kwargs={"name": "close"},
    )
    with Flow("rm") as flow:
        managed("db://x")
    (init,) = tasks_of(flow, ResourceInitTask)
    (setup,) = tasks_of(flow, ResourceSetupTask)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert (init.name, init.tags) == ("DB", {"init"})
    assert (setup.name, setup.max_retries) == ("DB.setup", 1)
    assert cleanup.name == "close"


def test_a_manager_needs_a_flow() -> None:
    with pytest.raises(ValueError, match="Could not infer an active Flow context"):
        Connection("db://x")


def test_a_block_cannot_span_two_flows() -> None:
    with Flow("one"):
        block = Connection("db://x")
    with pytest.raises(ValueError, match="Multiple flows cannot be used with the same resource"):
        with Flow("two"), block:
            identity(1)


def test_block_wiring() -> None:
    with Flow("rm") as flow:
        outside = identity(0)
        with Connection("db://x") as conn:
            first = use(conn)
            second = identity(first)
            independent = identity(outside)
    (setup,) = tasks_of(flow, ResourceSetupTask)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert flow.upstream_tasks(first) == {setup}
    assert flow.upstream_tasks(second) == {first}
    assert flow.upstream_tasks(independent) == {outside, setup}
    assert flow.downstream_tasks(first) == {second}
    assert flow.downstream_tasks(second) == {cleanup}
    assert flow.downstream_tasks(independent) == {cleanup}
    assert flow.downstream_tasks(outside) == {independent}


# -- running --------------------------------------------------------------------------------


def test_setup_block_cleanup_order_and_values() -> None:
    with Flow("rm") as flow:
        dsn = Parameter("dsn", default="db://x")
        with Connection(dsn) as conn:
            upper = use(conn)
    state = run(flow)
    assert type(state) is Success
    assert state.result[upper].result == "DB://X"
    assert Recorder.calls == [("init", "db://x"), "setup", "use", ("cleanup", {"dsn": "db://x"})]


def test_cleanup_runs_after_a_failed_block() -> None:
    with Flow("rm") as flow:
        with Connection("db://x") as conn:
            bad = fail(conn)
            good = use(conn)
        after = identity(bad)
    state = run(flow)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert type(state.result[bad]) is Failed
    assert type(state.result[after]) is TriggerFailed
    assert type(state.result[cleanup]) is Success
    assert state.result[good].result == "DB://X"
    assert Recorder.calls[-1] == ("cleanup", {"dsn": "db://x"})
    assert type(state) is Failed


def test_cleanup_skips_when_init_fails() -> None:
    @resource_manager
    class Broken:
        def __init__(self) -> None:
            raise ValueError("cannot connect")

        def setup(self) -> int:
            return 1

        def cleanup(self, resource: Any) -> None:
            Recorder.calls.append("cleanup")

    with Flow("rm") as flow:
        with Broken() as res:
            inside = identity(res)
    state = run(flow)
    (init,) = tasks_of(flow, ResourceInitTask)
    (setup,) = tasks_of(flow, ResourceSetupTask)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert type(state.result[init]) is Failed
    assert type(state.result[setup]) is TriggerFailed
    assert type(state.result[inside]) is TriggerFailed
    assert type(state.result[cleanup]) is Skipped
    assert state.result[cleanup].message == "Resource manager init failed"
    assert Recorder.calls == []
    assert type(state) is Failed


def test_cleanup_skips_when_setup_fails() -> None:
    @resource_manager
    class BadSetup:
        def __init__(self) -> None:
            pass

        def setup(self) -> int:
            raise RuntimeError("no setup")

        def cleanup(self, resource: Any) -> None:
            Recorder.calls.append("cleanup")

    with Flow("rm") as flow:
        with BadSetup() as res:
            identity(res)
    state = run(flow)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert state.result[cleanup].message == "Resource manager setup failed"
    assert Recorder.calls == []


def test_a_resource_in_a_skipped_case_skips_with_it() -> None:
    with Flow("rm") as flow:
        cond = identity(False)
        with case(cond, True):
            with Connection("db://x") as conn:
                inside = use(conn)
    state = run(flow)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert type(state.result[inside]) is Skipped
    assert type(state.result[cleanup]) is Skipped
    assert state.result[cleanup].message == "Resource manager init skipped"
    assert Recorder.calls == []


def test_nested_resources_clean_up_inner_first() -> None:
    with Flow("rm") as flow:
        with Connection("outer") as outer:
            with Connection(outer) as inner:
                identity(inner)
    state = run(flow)
    assert type(state) is Success
    cleanups = [c for c in Recorder.calls if isinstance(c, tuple) and c[0] == "cleanup"]
    assert cleanups == [("cleanup", {"dsn": {"dsn": "outer"}}), ("cleanup", {"dsn": "outer"})]


def test_setup_reruns_on_every_retry_pass() -> None:
    attempts = []

    @task(max_retries=1, retry_delay=timedelta(seconds=0))
    def flaky(conn: Any) -> str:
        attempts.append(conn)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return "ok"

    with Flow("rm") as flow:
        with Connection("db://x") as conn:
            result = flaky(conn)
    state = run(flow)
    assert state.result[result].result == "ok"
    assert Recorder.calls.count("setup") == 2
    assert Recorder.calls.count(("cleanup", {"dsn": "db://x"})) == 1
    assert Recorder.calls.count(("init", "db://x")) == 1


def test_a_cached_setup_is_not_rerun_on_a_retry_pass() -> None:
    cached_connection = resource_manager(
        Connection.resource_class, setup_task_kwargs={"cache_for": timedelta(hours=1)}
    )
    attempts = []

    @task(max_retries=1, retry_delay=timedelta(seconds=0))
    def flaky(conn: Any) -> str:
        attempts.append(conn)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return "ok"

    with Flow("rm") as flow:
        with cached_connection("db://x") as conn:
            result = flaky(conn)
    state = run(flow)
    assert state.result[result].result == "ok"
    assert type(state.result[conn]) is Cached
    assert Recorder.calls.count("setup") == 1


# -- reference tasks ------------------------------------------------------------------------


def test_init_and_cleanup_are_not_reference_tasks() -> None:
    with Flow("rm") as flow:
        dsn = Parameter("dsn", default="db://x")
        with Connection(dsn) as conn:
            last = use(conn)
        with NoSetup():
            lonely = identity(1)
    # ``last`` and ``lonely`` only feed cleanups, so they count as terminal; the
    # parameter feeds an init task, which is a real downstream (as in Prefect 1)
    assert flow.reference_tasks() == {last, lonely}


def test_a_failing_cleanup_does_not_fail_the_flow() -> None:
    @resource_manager
    class BadCleanup:
        def __init__(self) -> None:
            pass

        def cleanup(self, resource: Any) -> None:
            raise OSError("cannot close")

    with Flow("rm") as flow:
        with BadCleanup():
            inside = identity(1)
    state = run(flow)
    (cleanup,) = tasks_of(flow, ResourceCleanupTask)
    assert type(state.result[cleanup]) is Failed
    assert state.result[inside].result == 1
    assert type(state) is Success


# -- the trigger on literal states ----------------------------------------------------------


def edges() -> tuple[Edge, Edge, Edge]:
    init, setup, block, cleanup = Constant(1), Constant(2), Constant(3), Constant(4)
    return (
        Edge(init, cleanup, key="mgr"),
        Edge(setup, cleanup, key="resource"),
        Edge(block, cleanup),
    )


def test_trigger_runs_whatever_the_block_did() -> None:
    mgr, resource, block = edges()
    assert resource_cleanup_trigger({mgr: Success(), resource: Success(), block: Failed()})
    assert resource_cleanup_trigger({mgr: Success(), resource: Success(), block: Skipped()})
    assert resource_cleanup_trigger({mgr: Success(), block: TriggerFailed()})


def test_trigger_fails_while_an_upstream_is_unfinished() -> None:
    mgr, resource, block = edges()
    with pytest.raises(signals.TRIGGERFAIL, match="resource_cleanup_trigger"):
        resource_cleanup_trigger({mgr: Success(), resource: Success(), block: Retrying()})
    with pytest.raises(signals.TRIGGERFAIL):
        resource_cleanup_trigger({mgr: Success(), resource: Pending(), block: Success()})


@pytest.mark.parametrize(
    ("mgr_state", "resource_state", "message"),
    [
        (Skipped(), Skipped(), "Resource manager init skipped"),
        (Failed(), TriggerFailed(), "Resource manager init failed"),
        (Success(), Skipped(), "Resource manager setup skipped"),
        (Success(), Failed(), "Resource manager setup failed"),
    ],
)
def test_trigger_skips_without_a_resource(
    mgr_state: State, resource_state: State, message: str
) -> None:
    mgr, resource, block = edges()
    with pytest.raises(signals.SKIP, match=message):
        resource_cleanup_trigger({mgr: mgr_state, resource: resource_state, block: Success()})
