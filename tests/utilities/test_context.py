"""``flowcore.context``: access, layering, restoration, config merge, threads, pickling."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import cloudpickle
import pytest

import flowcore
from flowcore import Flow, context, task
from flowcore.configuration import Config
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.context import Context


def test_context_is_a_context_instance_exported_at_the_top() -> None:
    assert isinstance(context, Context)
    assert flowcore.context is context


def test_attribute_item_get_and_in() -> None:
    with context(a=1):
        assert context.a == 1 and context["a"] == 1
        assert context.get("a") == 1 and context.get("missing") is None
        assert context.get("missing", "default") == "default"
        assert "a" in context and "missing" not in context


def test_missing_keys_raise_attribute_and_key_errors() -> None:
    """Prefect 1.4.1 (verified): ``AttributeError: 'Context' object has no attribute 'key'``
    for attribute reads and deletes, KeyError for item reads."""
    with pytest.raises(AttributeError) as info:
        context.key  # noqa: B018
    assert str(info.value) == "'Context' object has no attribute 'key'"
    with pytest.raises(AttributeError, match="^'Context' object has no attribute 'nope'$"):
        del context.nope
    with pytest.raises(KeyError):
        context["missing"]
    assert getattr(context, "missing", "default") == "default"
    assert not hasattr(context, "missing")


def test_base_scope_holds_config_and_secrets() -> None:
    assert context.config is flowcore.config
    assert context.secrets == dict(flowcore.config.context.secrets)


def test_the_base_scope_holds_the_flowcore_logger_for_flow_handlers() -> None:
    """Prefect 1.4.1 (verified): ``prefect.context.logger`` is the ``prefect`` logger from
    import on, so a flow state handler (or a task's ``run`` called directly) can log."""
    assert context.logger is flowcore.utilities.logging.get_logger()
    lines: list[str] = []

    def handler(flow: Flow, old: Any, new: Any) -> Any:
        if new.is_finished():
            context.logger.info("flow %s finished", flow.name)
            lines.append(context.get("logger").name)
        return new

    @task
    def one() -> int:
        return context.get("logger").name == "flowcore.one"

    with Flow("logs", state_handlers=[handler]) as flow:
        checked = one()
    state = flow.run()
    assert state.is_successful(), state
    assert state.result[checked].result is True  # a task run's logger is its own
    assert lines == ["flowcore"]
    assert one.run() is False  # called directly: the flowcore logger, as in Prefect 1


def test_with_block_accepts_dicts_and_kwargs() -> None:
    with context({"a": 1, "b": 2}, c=3) as ctx:
        assert ctx is context
        assert (context.a, context.b, context.c) == (1, 2, 3)
    with context({"a": 1}, a=2):
        assert context.a == 2


def test_with_block_restores_exactly() -> None:
    context.update(x=1)
    before = context.to_dict()
    with context(x=2, y=3):
        assert (context.x, context.y) == (2, 3)
        context.z = 4
        context["w"] = 5
        del context.x
        assert "x" not in context
    assert context.to_dict() == before
    assert context.x == 1 and "y" not in context and "z" not in context and "w" not in context


def test_nested_blocks() -> None:
    with context(a=1, b=1):
        with context(b=2, c=2):
            with context(c=3):
                assert (context.a, context.b, context.c) == (1, 2, 3)
            assert (context.a, context.b, context.c) == (1, 2, 2)
        assert (context.a, context.b) == (1, 1) and "c" not in context
    assert "a" not in context


def test_restoration_after_an_exception() -> None:
    with pytest.raises(RuntimeError), context(a=1):
        raise RuntimeError("boom")
    assert "a" not in context


def test_one_block_object_can_be_reentered() -> None:
    block = context(a=1)
    with block:
        with block:
            assert context.a == 1
        assert context.a == 1
    assert "a" not in context


def test_update_persists_within_the_scope_and_not_beyond() -> None:
    with context(a=1):
        context.update(b=2)
        context.update({"c": 3}, d=4)
        assert (context.b, context.c, context.d) == (2, 3, 4)
        with context(e=5):
            assert context.b == 2
        assert context.b == 2
    assert "b" not in context and "c" not in context
    context.update(top=1)
    assert context.top == 1


def test_setdefault_keys_values_items_len_iter() -> None:
    with context(a=1):
        assert context.setdefault("a", 9) == 1
        assert context.setdefault("b", 2) == 2 and context.b == 2
        assert "a" in context.keys() and ("a", 1) in context.items()
        assert 1 in context.values()
        assert len(context) == len(context.keys())
        assert set(iter(context)) == set(context.keys())


def test_config_key_is_deep_merged() -> None:
    with context(config={"flows": {"checkpointing": True}, "new": {"k": 1}}):
        config = context.config
        assert isinstance(config, Config) and isinstance(config.new, Config)
        assert config.flows.checkpointing is True
        assert config.flows.run_on_schedule is True  # siblings kept
        assert config.logging.level == flowcore.config.logging.level
        assert config.new.k == 1
        with context(config={"flows": {"run_on_schedule": False}}):
            assert context.config.flows.checkpointing is True
            assert context.config.flows.run_on_schedule is False
    assert context.config is flowcore.config
    assert flowcore.config.flows.checkpointing is False and "new" not in flowcore.config


def test_passing_the_current_config_is_a_no_op() -> None:
    with context(config=context.config):
        assert context.config is flowcore.config


def test_pickles_by_reference_not_by_contents() -> None:
    """A task function that closes over ``flowcore.context`` must travel to process-based
    executors; the context's contents never travel with it. (Prefect 1.4.1 raises TypeError
    here; flowcore keeps the better behaviour, named in docs/migrating.md.)"""
    with context(secret_key="not pickled"):
        for payload in (pickle.dumps(context), cloudpickle.dumps(context)):
            assert b"not pickled" not in payload
            assert pickle.loads(payload) is context


def test_to_dict_is_a_recursive_plain_copy() -> None:
    with context(a={"b": {"c": 1}}, items=[{"x": 1}]):
        data = context.to_dict()
    assert type(data) is dict and type(data["config"]) is dict
    assert type(data["config"]["flows"]) is dict
    assert data["a"] == {"b": {"c": 1}} and data["items"] == [{"x": 1}]
    data["a"]["b"]["c"] = 2
    data["config"]["flows"]["checkpointing"] = "changed"
    assert flowcore.config.flows.checkpointing is False


def test_a_new_thread_sees_no_keys_from_the_main_thread() -> None:
    seen: dict[str, Any] = {}

    def look() -> None:
        seen["key"] = "main_only" in context
        seen["config"] = context.config is flowcore.config
        context.update(thread_only=True)

    with context(main_only=1):
        thread = threading.Thread(target=look)
        thread.start()
        thread.join()
        assert context.main_only == 1
    assert seen == {"key": False, "config": True}
    assert "thread_only" not in context


def test_threads_do_not_share_updates() -> None:
    barrier = threading.Barrier(2)
    results: dict[int, Any] = {}

    def worker(n: int) -> None:
        context.update(n=n)
        barrier.wait()
        results[n] = context.n

    threads = [threading.Thread(target=worker, args=(i,)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {1: 1, 2: 2}


def test_clear_resets_to_the_base_scope() -> None:
    context.update(a=1)
    context.clear()
    assert "a" not in context and context.config is flowcore.config


def test_repr_lists_keys() -> None:
    with context(zz_key=1):
        assert "zz_key" in repr(context)


def test_flow_run_context_keys_and_user_context() -> None:
    @task
    def grab() -> dict[str, Any]:
        return {key: context.get(key) for key in ("flow_name", "task_name", "map_index", "mine")}

    with Flow("ctx") as flow:
        got = grab()
    state = flow.run(context={"mine": "yes"})
    assert state.result[got].result == {
        "flow_name": "ctx",
        "task_name": "grab",
        "map_index": None,
        "mine": "yes",
    }
    assert "flow_name" not in context and "mine" not in context


def test_set_temporary_config_is_visible_in_context() -> None:
    with set_temporary_config({"flows.checkpointing": True}):
        assert context.config.flows.checkpointing is True
    assert context.config.flows.checkpointing is False


def test_detached_context_from_a_dict_and_keywords() -> None:
    """Prefect 1.4.1 (verified): ``Context(dict, **kw)`` builds a context of its own; the
    keywords win over the dict; the global context is untouched."""
    detached = Context({"a": 1, "b": 1}, b=2)
    assert (detached.a, detached.b) == (1, 2)
    assert detached.config is flowcore.config
    assert "a" not in context
    assert Context({"a": 1}, a=2).a == 2


def test_detached_context_keys_win_over_config_context_keys() -> None:
    """Prefect 1.4.1 (verified): the constructor starts from ``config.context`` and the
    given keys override it; ``config.context.secrets`` arrives as ``secrets``."""
    with set_temporary_config({"context.my_key": "from config", "context.secrets.S": "x"}):
        assert Context().my_key == "from config"
        assert Context({"my_key": "dict"}).my_key == "dict"
        assert Context(my_key="kw").my_key == "kw"
        assert Context({"my_key": "dict"}, my_key="kw").my_key == "kw"
        assert Context().secrets == {"S": "x"}


def test_detached_context_follows_this_modules_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect 1's own tests swap ``prefect.utilities.context.config``; the same works here."""
    import flowcore.utilities.context as context_module

    subsection = Config(password="1234")
    monkeypatch.setattr(
        context_module,
        "config",
        Config(context=Config(subsection=subsection, key1="v1", key2="v2")),
    )
    fresh = Context(key2="new")
    assert (fresh.key1, fresh.key2, fresh.subsection) == ("v1", "new", subsection)


def test_detached_context_deep_merges_a_given_config() -> None:
    """Prefect 1.4.1 (verified): a ``config`` key, given as keyword or inside the dict, is
    merged over the global config, which keeps its other keys and is not changed."""
    for detached in (
        Context(config={"cloud": {"send_flow_run_logs": "FOO"}}),
        Context({"config": {"cloud": {"send_flow_run_logs": "FOO"}}}),
    ):
        assert detached.config.cloud.send_flow_run_logs == "FOO"
        assert detached.config.flows.checkpointing is False
    assert "cloud" not in flowcore.config


def test_detached_context_as_a_context_manager() -> None:
    """Prefect 1.4.1 (verified): a detached context layers and restores its own keys."""
    detached = Context(my_key="fizz")
    with detached(my_key="buzz") as inner:
        assert inner is detached and detached.my_key == "buzz"
        with detached({"config": {"cloud": {"send_flow_run_logs": "FOO"}}}):
            assert detached.config.cloud.send_flow_run_logs == "FOO"
            assert detached.my_key == "buzz"
        assert detached.my_key == "buzz"
    assert detached.my_key == "fizz"
    assert "my_key" not in context


def test_pickling_a_detached_context_raises_prefect_1s_type_error() -> None:
    """Prefect 1.4.1 (verified) raises ``TypeError: Pickling context objects is explicitly
    not supported. You should always access context as an attribute of the `prefect`
    module, as in `prefect.context```; flowcore names itself in the same sentence."""
    for dumps in (pickle.dumps, cloudpickle.dumps):
        with pytest.raises(TypeError, match="explicitly not supported.*flowcore.context"):
            dumps(Context(a=1))
