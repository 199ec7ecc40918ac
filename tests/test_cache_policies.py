"""Cache policies: keys, composition, storage, expiration, refresh, isolation."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import flowcore.caching.plan as plan_module
from flowcore import Flow, Parameter, task
from flowcore import cache_policies as cp
from flowcore.cache_policies import KeyContext
from flowcore.caching.code import code_digest
from flowcore.core.task import Task
from flowcore.engine.state import Cached, Success
from flowcore.locking.memory import MemoryLockManager
from flowcore.transactions import IsolationLevel
from flowcore.utilities.configuration import set_temporary_config
from tests.caching.conftest import key_dir


@pytest.fixture(autouse=True)
def home(tmp_path: Path) -> Iterator[Path]:
    """Policy caches default to <home_dir>/storage: keep them in a temporary home."""
    with set_temporary_config({"home_dir": str(tmp_path / "home")}):
        yield tmp_path / "home"


def ctx(
    task_: Any = None, flow_run_id: str = "run-1", parameters: dict[str, Any] | None = None
) -> KeyContext:
    return KeyContext(task_, "task-run-1", flow_run_id, parameters or {})


def test_inputs_policy_keys_on_inputs_and_can_ignore_one() -> None:
    key = cp.INPUTS.compute_key(ctx(), {"x": 1, "debug": True})
    assert key == cp.INPUTS.compute_key(ctx(flow_run_id="other"), {"debug": True, "x": 1})
    assert key != cp.INPUTS.compute_key(ctx(), {"x": 2, "debug": True})
    ignoring = cp.INPUTS - "debug"
    assert ignoring.compute_key(ctx(), {"x": 1, "debug": True}) == ignoring.compute_key(
        ctx(), {"x": 1, "debug": False}
    )
    assert repr(ignoring) == "INPUTS - 'debug'"
    assert cp.INPUTS.exclude == frozenset()


def test_run_id_and_flow_parameters_policies() -> None:
    assert cp.RUN_ID.compute_key(ctx(flow_run_id="a"), {}) != cp.RUN_ID.compute_key(
        ctx(flow_run_id="b"), {}
    )
    one = cp.FLOW_PARAMETERS.compute_key(ctx(parameters={"p": 1}), {"x": 1})
    assert one == cp.FLOW_PARAMETERS.compute_key(ctx(parameters={"p": 1}), {"x": 2})
    assert one != cp.FLOW_PARAMETERS.compute_key(ctx(parameters={"p": 2}), {"x": 1})


def test_default_is_inputs_source_and_run_id() -> None:
    assert repr(cp.DEFAULT) == "INPUTS + TASK_SOURCE + RUN_ID"

    @task
    def f(x: int) -> int:
        return x

    base = cp.DEFAULT.compute_key(ctx(f), {"x": 1})
    assert base == cp.DEFAULT.compute_key(ctx(f), {"x": 1})
    assert base != cp.DEFAULT.compute_key(ctx(f, flow_run_id="run-2"), {"x": 1})
    assert base != cp.DEFAULT.compute_key(ctx(f), {"x": 2})


def test_composition_rules() -> None:
    combined = cp.INPUTS + cp.FLOW_PARAMETERS + cp.RUN_ID
    assert isinstance(combined, cp.CompoundCachePolicy) and len(combined.policies) == 3
    assert repr(combined - "x") == "INPUTS - 'x' + FLOW_PARAMETERS + RUN_ID"
    with pytest.raises(ValueError, match="NONE cannot be combined"):
        cp.NONE + cp.INPUTS
    with pytest.raises(ValueError, match="NONE cannot be combined"):
        cp.INPUTS + cp.NONE
    with pytest.raises(TypeError, match="no inputs to ignore"):
        cp.RUN_ID - "x"
    assert cp.NONE.compute_key(ctx(), {"x": 1}) is None


def test_configure_returns_a_copy(tmp_path: Path) -> None:
    manager = MemoryLockManager()
    configured = cp.INPUTS.configure(
        key_storage=str(tmp_path), isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=manager
    )
    assert configured is not cp.INPUTS and cp.INPUTS.lock_manager is None
    assert configured.key_storage == str(tmp_path) and configured.lock_manager is manager
    assert (configured + cp.RUN_ID).lock_manager is manager
    with pytest.raises(TypeError, match="IsolationLevel"):
        cp.INPUTS.configure(isolation_level="SERIALIZABLE")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"key_storage": 5}, ["key_storage", "a directory", "a Result", "got 5"]),
        ({"key_storage": b"/tmp/x"}, ["key_storage", "got b'/tmp/x'"]),
        ({"lock_manager": "memory"}, ["lock_manager", "MemoryLockManager()", "got 'memory'"]),
    ],
)
def test_configure_rejects_what_it_cannot_use(kwargs: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(TypeError) as raised:
        cp.INPUTS.configure(**kwargs)
    for word in words:
        assert word in str(raised.value)


def test_configure_takes_a_path_or_a_result_as_key_storage(tmp_path: Path) -> None:
    from flowcore.engine.results import LocalResult

    assert cp.INPUTS.configure(key_storage=tmp_path).key_storage == tmp_path
    records = LocalResult(dir=tmp_path)
    assert cp.INPUTS.configure(key_storage=records).key_storage is records


def _module_with(tmp_path: Path, name: str, source: str) -> Any:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_task_source_ignores_comments_layout_and_docstrings(tmp_path: Path) -> None:
    plain = _module_with(tmp_path, "plain_src", "def work(x):\n    return x + 1\n")
    noisy = _module_with(
        tmp_path,
        "noisy_src",
        (
            "import functools\n\n"
            "@functools.lru_cache\n"
            "def work(x):\n"
            "    '''Adds one.'''\n"
            "    # a comment\n\n"
            "    return (x +\n"
            "            1)   # trailing\n"
        ),
    )
    changed = _module_with(tmp_path, "changed_src", "def work(x):\n    return x + 2\n")
    assert cp.source_hash(plain.work) == cp.source_hash(noisy.work)
    assert cp.source_hash(plain.work) != cp.source_hash(changed.work)


def test_task_source_of_a_task_and_a_class_task() -> None:
    from flowcore.core.task import Task

    @task
    def a(x: int) -> int:
        return x + 1

    class B(Task):
        def run(self, x: int) -> int:
            return x * 2

    key_a = cp.TASK_SOURCE.compute_key(ctx(a), {})
    key_b = cp.TASK_SOURCE.compute_key(ctx(B()), {})
    assert key_a and key_b and key_a != key_b
    assert key_a == cp.TASK_SOURCE.compute_key(ctx(a.copy()), {})


class Mult(Task):
    """A task class configured in its constructor, as Prefect 1's task library does."""

    def __init__(self, factor: Any, **kwargs: Any) -> None:
        self.factor = factor
        super().__init__(**kwargs)

    def run(self, x: int) -> Any:
        return x * self.factor


class Doubler(Task):
    def run(self, x: int) -> int:
        return x * 2


def test_task_source_counts_a_task_class_s_constructor_arguments() -> None:
    def key(task_: Any) -> str | None:
        return cp.TASK_SOURCE.compute_key(ctx(task_), {})

    assert key(Mult(2)) != key(Mult(3))
    assert key(Mult(2)) == key(Mult(2, name="other", tags=["t"]))  # Task's own do not count
    assert key(Mult(2)) == key(Mult(2).copy())
    copied = Mult(2).copy(factor=3)
    assert key(copied) == key(Mult(3))
    changed = Mult(2)
    changed.factor = 5  # reassigned after the constructor: its value now
    assert key(changed) == key(Mult(5))


def test_the_engine_s_memos_and_an_assigned_logger_are_no_own_attributes() -> None:
    """Which of a class's tasks came first, or whether a plain Task was made before, must
    not decide what TASK_SOURCE counts: the engine's memos (the run signature, made while
    the first task of a class is checked) and ``self.logger = ...`` are not configuration."""

    class Scaled(Task):
        def __init__(self, factor: int, **kwargs: Any) -> None:
            self.factor = factor
            self.logger = logging.getLogger("scaled")
            super().__init__(**kwargs)

        def run(self, x: int) -> int:
            return x * self.factor

    first, second = Scaled(2), Scaled(2)
    assert first._own_attributes == second._own_attributes == ("factor",)
    assert cp.TASK_SOURCE.compute_key(ctx(first), {}) == cp.TASK_SOURCE.compute_key(ctx(second), {})


def test_task_source_keys_of_tasks_without_own_attributes_are_unchanged() -> None:
    """Records written before attributes counted keep hitting: a ``@task`` function and a
    task class with no attributes of its own have the key TASK_SOURCE always gave them."""

    @task(cache_policy=cp.INPUTS + cp.TASK_SOURCE)
    def a(x: int) -> int:
        return x + 1

    for task_, fn in ((a, a.run), (Doubler(), Doubler.run)):
        before = cp._combine("code", [code_digest(fn), repr(None)])
        assert cp.TASK_SOURCE.describe_key(ctx(task_), {}) == (before, {"TASK_SOURCE": before})
        compound = (cp.INPUTS + cp.TASK_SOURCE).compute_key(ctx(task_), {"x": 1})
        inputs = cp.INPUTS.compute_key(ctx(), {"x": 1})
        assert compound == cp._combine("compound", [("Inputs", inputs), ("TaskSource", before)])


@pytest.fixture
def attribute_hashes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The names of the attributes ``TASK_SOURCE`` hashed, one tuple per hashing."""
    hashed: list[tuple[str, ...]] = []
    real = cp.hash_mapping_noting_files

    def counting(values: Any, **kwargs: Any) -> Any:
        hashed.append(tuple(values))
        return real(values, **kwargs)

    monkeypatch.setattr(cp, "hash_mapping_noting_files", counting)
    return hashed


def test_a_task_s_attributes_are_hashed_once_until_one_is_reassigned(
    attribute_hashes: list[tuple[str, ...]],
) -> None:
    def key(task_: Any) -> str | None:
        return cp.TASK_SOURCE.compute_key(ctx(task_), {})

    mult = Mult({"a": 1})
    first = key(mult)
    assert [key(mult) for _ in range(3)] == [first] * 3 and len(attribute_hashes) == 1
    mult.factor["a"] = 2  # changed in place: not seen (documented; bump cache_version)
    assert key(mult) == first and len(attribute_hashes) == 1
    mult.factor = {"a": 3}
    assert key(mult) == key(Mult({"a": 3})) != first and len(attribute_hashes) == 3
    copied = mult.copy(factor={"a": 4})
    assert key(copied) == key(Mult({"a": 4})) and key(mult) == key(Mult({"a": 3}))
    del mult.factor
    assert key(mult) == cp._combine("code", [code_digest(Mult.run), repr(None)])


def test_a_task_s_attribute_digest_is_not_pickled_and_each_copy_makes_its_own(
    attribute_hashes: list[tuple[str, ...]],
) -> None:
    mult = Mult(2)
    key = cp.TASK_SOURCE.compute_key(ctx(mult), {})
    received = pickle.loads(pickle.dumps(mult))
    assert "_attributes_memo" in vars(mult) and "_attributes_memo" not in vars(received)
    assert cp.TASK_SOURCE.compute_key(ctx(received), {}) == key and len(attribute_hashes) == 2


def test_a_path_attribute_is_read_again_for_every_key(
    tmp_path: Path, attribute_hashes: list[tuple[str, ...]]
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")
    reader = Mult(data)
    first = cp.TASK_SOURCE.compute_key(ctx(reader), {})
    data.write_text("two, longer")
    assert cp.TASK_SOURCE.compute_key(ctx(reader), {}) != first and len(attribute_hashes) == 2


def test_mapped_children_of_a_task_class_hash_its_attributes_once(
    attribute_hashes: list[tuple[str, ...]],
) -> None:
    with Flow("mapped") as flow:
        out = Mult(10, cache_policy=cp.INPUTS + cp.TASK_SOURCE).map(list(range(5)))
    state = flow.run()
    assert state.result[out].result == [0, 10, 20, 30, 40]
    assert attribute_hashes == [("factor",)]


def test_engine_bookkeeping_on_a_task_does_not_change_its_key() -> None:
    from flowcore.transactions import transaction

    outside = cp.TASK_SOURCE.compute_key(ctx(Mult(2)), {})
    with Flow("bookkeeping") as flow:
        with transaction("group"):
            inside = Mult(2, cache_policy=cp.INPUTS + cp.TASK_SOURCE)(1)
    flow.run()
    assert inside.cache_plan is not None and inside._transaction is not None
    assert cp.TASK_SOURCE.compute_key(ctx(inside), {}) == outside


def test_task_classes_that_differ_only_in_constructor_arguments_do_not_share_a_value(
    logs: pytest.LogCaptureFixture,
) -> None:
    policy = cp.INPUTS + cp.TASK_SOURCE
    with Flow("cls") as flow:
        double = Mult(2, name="double", cache_policy=policy)(10)
        triple = Mult(3, name="triple", cache_policy=policy)(10)
    first = flow.run()
    assert [type(first.result[t]).__name__ for t in (double, triple)] == ["Success", "Success"]
    assert (first.result[double].result, first.result[triple].result) == (20, 30)
    second = flow.run()
    assert [type(second.result[t]).__name__ for t in (double, triple)] == ["Cached", "Cached"]
    assert (second.result[double].result, second.result[triple].result) == (20, 30)

    with Flow("cls") as changed:
        Mult(4, name="triple", cache_policy=policy)(10)
    logs.clear()
    changed.run()
    [miss] = [r.getMessage() for r in logs.records if "cache miss" in r.getMessage()]
    assert "the task's attributes changed since the task's last record" in miss
    assert "code changed" not in miss


def test_an_attribute_without_a_digest_warns_once_naming_it_and_runs_uncached(
    logs: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    class Locked(Task):
        def __init__(self, **kwargs: Any) -> None:
            self.lock = threading.Lock()
            super().__init__(**kwargs)

        def run(self, x: int) -> int:
            with self.lock:
                calls.append(x)
            return x

    with Flow("locked") as flow:
        Locked(cache_policy=cp.INPUTS + cp.TASK_SOURCE)(1)
    flow.run()
    flow.run()
    assert calls == [1, 1]
    warnings = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one per run
    assert all("cannot compute a key: attribute 'lock' (a _thread.lock)" in w for w in warnings)


def test_cache_key_fn_policy_sees_the_context_and_the_inputs() -> None:
    seen: list[Any] = []

    def key_fn(context: KeyContext, parameters: dict[str, Any]) -> str | None:
        seen.append((context.task_run_id, context.flow_run_id, parameters))
        return None if parameters.get("skip") else f"key-{parameters['x']}"

    policy = cp.CacheKeyFnPolicy(key_fn)
    assert policy.compute_key(ctx(), {"x": 3}) == "key-3"
    assert policy.compute_key(ctx(), {"x": 3, "skip": True}) is None
    assert seen[0] == ("task-run-1", "run-1", {"x": 3})
    assert (policy + cp.RUN_ID).compute_key(ctx(), {"x": 1, "skip": True}) is None
    with pytest.raises(ValueError, match="must return a str"):
        cp.CacheKeyFnPolicy(lambda c, p: 5).compute_key(ctx(), {})
    with pytest.raises(TypeError, match="callable"):
        cp.CacheKeyFnPolicy("nope")  # type: ignore[arg-type]


# -- tasks ---------------------------------------------------------------------------------


def test_task_argument_validation() -> None:
    with pytest.raises(ValueError, match="SERIALIZABLE needs a lock manager"):
        task(
            lambda: 1, cache_policy=cp.INPUTS.configure(isolation_level=IsolationLevel.SERIALIZABLE)
        )
    with pytest.raises(ValueError, match="not both"):
        task(lambda: 1, cache_policy=cp.INPUTS, cache_key_fn=lambda c, p: "k")
    with pytest.raises(ValueError, match="either Prefect 1 caching"):
        task(lambda: 1, cache_policy=cp.INPUTS, cache_for=timedelta(hours=1))
    with pytest.raises(ValueError, match="cache_expiration needs"):
        task(lambda: 1, cache_expiration=timedelta(hours=1))
    with pytest.raises(TypeError, match="flowcore.cache_policies policy"):
        task(lambda: 1, cache_policy="INPUTS")
    keyed = task(lambda: 1, cache_key_fn=lambda c, p: "k")
    assert isinstance(keyed.cache_policy, cp.CacheKeyFnPolicy)


def counting(calls: list[Any], **kwargs: Any) -> Any:
    @task(**kwargs)
    def work(x: int) -> int:
        calls.append(x)
        return x * 10

    return work


def test_inputs_policy_caches_across_runs_in_storage_named_by_key(home: Path) -> None:
    calls: list[int] = []
    work = counting(calls, cache_policy=cp.INPUTS)
    with Flow("policy") as flow:
        n = Parameter("n")
        out = work(n)
    first = flow.run(n=1)
    second = flow.run(n=1)
    third = flow.run(n=2)
    assert calls == [1, 2]
    assert type(first.result[out]) is Success
    assert isinstance(second.result[out], Cached) and second.result[out].result == 10
    assert "Cached result found for key" in str(second.result[out].message)
    key = cp.INPUTS.compute_key(ctx(), {"x": 1})
    assert key is not None
    [record] = key_dir(home / "storage", key).glob("*.json")
    assert json.loads(record.read_text())["key"] == key
    assert len(list(key_dir(home / "storage", key).glob("*.value"))) == 1
    assert third.result[out].result == 20


def test_inputs_count_an_argument_s_default_as_if_it_were_given(home: Path) -> None:
    """As in Prefect 3, a policy's inputs are the call's arguments with the defaults of
    those not given: ``f(1)`` and ``f(1, y=1)`` share a key, a changed default does not."""
    calls: list[tuple[int, int]] = []

    def f(x: int, y: int = 1) -> int:
        calls.append((x, y))
        return x + y

    class Add(Task):
        def run(self, x: int, y: int = 1) -> int:
            calls.append((x, -y))
            return x + y

    policy = cp.INPUTS + cp.TASK_SOURCE  # (the two tasks' records apart)
    for make in (lambda: task(f, cache_policy=policy), lambda: Add(cache_policy=policy)):
        calls.clear()
        work = make()
        flows = []
        for kwargs in ({}, {"y": 1}, {"y": 2}):
            with Flow("defaults") as flow:
                work(1, **kwargs)
            flows.append(flow)
        states = [flow.run() for flow in flows]
        assert len(calls) == 2, calls
        assert isinstance(states[1].result[flows[1].get_tasks()[0]], Cached)
        assert not isinstance(states[2].result[flows[2].get_tasks()[0]], Cached)

    changed = task(lambda x, y=5: x + y, name="f", cache_policy=cp.INPUTS)
    assert cp.INPUTS.compute_key(ctx(), {"x": 1, "y": 1}) != cp.INPUTS.compute_key(
        ctx(), {"x": 1, "y": 5}
    )
    with Flow("defaults") as flow:
        changed(1)
    assert not isinstance(flow.run().result[flow.get_tasks()[0]], Cached)


def test_a_default_with_no_digest_is_named_as_the_default_with_the_way_out(
    logs: pytest.LogCaptureFixture,
) -> None:
    client = threading.Lock()  # (no deterministic digest)

    def fetch(x: int, client: Any = client) -> int:
        return x

    with Flow("unhashable-default") as flow:
        task(fetch, cache_policy=cp.INPUTS)(1)
    assert flow.run().is_successful()
    (warning,) = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert "cannot compute a key: the default value of argument 'client' (a _thread.lock)" in (
        warning
    )
    assert warning.endswith("; or leave it out of the key with INPUTS - 'client'")
    logs.clear()
    with Flow("unhashable-default") as flow:
        task(fetch, cache_policy=cp.INPUTS - "client")(1)
    assert flow.run().is_successful()
    assert not [r for r in logs.records if r.levelname == "WARNING"]


def test_run_id_caches_within_one_run_only() -> None:
    calls: list[int] = []
    work = counting(calls, cache_policy=cp.INPUTS + cp.RUN_ID)
    with Flow("within") as flow:
        a = work(5)
        b = work(5, upstream_tasks=[a])
    state = flow.run()
    assert calls == [5] and isinstance(state.result[b], Cached)
    flow.run()
    assert calls == [5, 5]


def test_uncomputable_key_warns_and_runs_uncached(logs: pytest.LogCaptureFixture) -> None:
    calls: list[Any] = []

    @task(cache_policy=cp.INPUTS)
    def consume(thing: Any) -> int:
        calls.append(thing)
        return 1

    with Flow("unhashable") as flow:
        consume(threading.Lock())
    flow.run()
    flow.run()
    assert len(calls) == 2
    assert any(
        "cannot compute a key" in r.getMessage() and r.levelname == "WARNING" for r in logs.records
    )


def test_a_key_function_that_raises_is_named_with_its_error(
    logs: pytest.LogCaptureFixture,
) -> None:
    # (the WARNING said only "cannot compute a key ('day')": not the function, nor KeyError)
    def by_day(context: Any, parameters: Any) -> str:
        return str(context.parameters["day"])

    @task(cache_key_fn=by_day)
    def load() -> int:
        return 1

    with Flow("no-day") as flow:
        load()
    assert flow.run().is_successful()
    (warning,) = [r.getMessage() for r in logs.records if "cannot compute a key" in r.getMessage()]
    assert "CacheKeyFnPolicy(by_day) cannot compute a key (KeyError('day'))" in warning


def test_expiration_is_stored_with_the_record_and_shared_by_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    @task(cache_key_fn=lambda c, p: "shared-key", cache_expiration=timedelta(seconds=1))
    def writer() -> str:
        calls.append("writer")
        return "w"

    @task(cache_key_fn=lambda c, p: "shared-key")
    def reader() -> str:
        calls.append("reader")
        return "r"

    @task(cache_key_fn=lambda c, p: "long-key", cache_expiration=timedelta(hours=1))
    def lasting() -> str:
        calls.append("lasting")
        return "l"

    with Flow("writer") as first:
        writer()
        lasting()
    with Flow("reader") as second:
        out = reader()
        kept = lasting()
    real_now = plan_module._now
    monkeypatch.setattr(plan_module, "_now", lambda: real_now() - timedelta(minutes=5))
    first.run()  # writer's record expired 1 s after "5 minutes ago"; lasting's is fresh
    monkeypatch.setattr(plan_module, "_now", real_now)
    state = second.run()
    assert calls == ["writer", "lasting", "reader"]
    assert state.result[out].result == "r" and isinstance(state.result[kept], Cached)


def test_refresh_cache_per_task_and_globally() -> None:
    calls: list[str] = []

    def make(name: str, **kwargs: Any) -> Any:
        def body() -> str:
            calls.append(name)
            return name + str(len(calls))

        body.__name__ = name
        return task(body, cache_key_fn=lambda c, p, n=name: n, **kwargs)

    always = make("always", refresh_cache=True)
    normal = make("normal")
    exempt = make("exempt", refresh_cache=False)
    with Flow("refresh") as flow:
        a, b, c = always(), normal(), exempt()
    flow.run()
    second = flow.run()
    assert calls == ["always", "normal", "exempt", "always"]
    assert second.result[a].result == "always4"
    with set_temporary_config({"tasks.refresh_cache": True}):
        third = flow.run()
    assert calls[4:] == ["always", "normal"]
    assert isinstance(third.result[c], Cached)
    assert isinstance(flow.run().result[b], Cached) and flow.run().result[b].result == "normal6"


def test_env_var_refreshes_every_task(tmp_path: Path) -> None:
    import subprocess
    import textwrap

    script = tmp_path / "refresh.py"
    log = tmp_path / "log.txt"
    script.write_text(
        textwrap.dedent(f"""
        from flowcore import Flow, task
        @task(cache_key_fn=lambda c, p: "k")
        def work():
            open({str(log)!r}, "a").write("ran\\n")
            return 1
        with Flow("env") as flow:
            work()
        flow.run()
    """)
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLOWCORE__HOME_DIR": str(tmp_path / "h"),
    }
    for extra in ({}, {}, {"FLOWCORE__TASKS__REFRESH_CACHE": "true"}):
        subprocess.run([sys.executable, str(script)], env={**env, **extra}, check=True, timeout=120)
    assert log.read_text().split() == ["ran", "ran"]


def test_separate_key_storage(tmp_path: Path, home: Path) -> None:
    calls: list[int] = []
    keys = tmp_path / "keys"
    work = counting(calls, cache_policy=cp.INPUTS.configure(key_storage=str(keys)))
    with Flow("keys") as flow:
        work(3)
    flow.run()
    flow.run()
    assert calls == [3]
    key = cp.INPUTS.compute_key(ctx(), {"x": 3})
    assert key is not None
    [record] = key_dir(keys, key).glob("*.json")
    assert not list((home / "storage").rglob("*.json"))
    [value] = key_dir(home / "storage", key).glob("*.value")
    assert json.loads(record.read_text())["value"]["location"].endswith(value.name)
    record.unlink()
    flow.run()
    assert calls == [3, 3]
    from flowcore.engine.results import LocalResult

    assert LocalResult(dir=home / "storage").read(str(value)).value == 30


def test_a_lost_value_is_a_warning_and_a_rerun(home: Path, logs: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    work = counting(calls, cache_policy=cp.INPUTS)
    with Flow("lost") as flow:
        work(4)
    flow.run()
    key = cp.INPUTS.compute_key(ctx(), {"x": 4})
    [value] = key_dir(home / "storage", str(key)).glob("*.value")
    value.write_bytes(b"garbage")
    flow.run()
    assert calls == [4, 4]
    assert any(
        r.levelname == "WARNING" and "cannot be read" in r.getMessage() for r in logs.records
    )
    flow.run()
    assert calls == [4, 4]


def test_task_result_storage_is_used(tmp_path: Path) -> None:
    from flowcore.engine.results import LocalResult

    calls: list[int] = []
    work = counting(calls, cache_policy=cp.INPUTS, result=LocalResult(dir=tmp_path / "mine"))
    with Flow("own") as flow:
        work(6)
    flow.run()
    key = cp.INPUTS.compute_key(ctx(), {"x": 6})
    assert list(key_dir(tmp_path / "mine", str(key)).glob("*.json"))
    assert list(key_dir(tmp_path / "mine", str(key)).glob("*.value"))


# -- isolation -----------------------------------------------------------------------------


def _run_concurrently(isolation: IsolationLevel, body_hook: Any) -> tuple[list[int], list[Any]]:
    executions: list[int] = []
    policy = cp.INPUTS.configure(isolation_level=isolation, lock_manager=MemoryLockManager())

    @task(cache_policy=policy)
    def slow(x: int) -> int:
        executions.append(x)
        body_hook()
        return x + 1

    with Flow("isolation") as flow:
        out = slow(1)
    states: list[Any] = [None, None]

    def run(index: int) -> None:
        states[index] = flow.run().result[out]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    return executions, [threads, states]


def test_read_committed_lets_concurrent_runs_both_execute() -> None:
    barrier = threading.Barrier(2, timeout=10)
    executions, (threads, states) = _run_concurrently(IsolationLevel.READ_COMMITTED, barrier.wait)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert executions == [1, 1]
    assert all(type(s) is Success for s in states)


def test_serializable_runs_the_body_once_and_the_other_run_is_cached() -> None:
    inside = threading.Event()

    def hold() -> None:
        inside.set()
        time.sleep(0.3)

    executions, (threads, states) = _run_concurrently(IsolationLevel.SERIALIZABLE, hold)
    threads[0].start()
    assert inside.wait(timeout=10)
    threads[1].start()
    for thread in threads:
        thread.join(timeout=30)
    assert executions == [1]
    assert sorted(type(s).__name__ for s in states) == ["Cached", "Success"]
    assert {s.result for s in states} == {2}
