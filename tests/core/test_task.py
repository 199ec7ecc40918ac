"""``flowcore.core.task.Task``: construction, validation, introspection and the functional API.

Expected names and behaviours were checked against Prefect 1.4.1 (see
``reference/prefect1-semantics.md`` sections 1.1-1.7).
"""

from __future__ import annotations

import inspect
import re
import typing
from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Parameter, Task, tags, task
from flowcore.core.edge import Edge
from flowcore.engine import cache_validators
from flowcore.engine.results import PrefectResult
from flowcore.tasks.core.constants import Constant
from flowcore.tasks.core.operators import GetItem
from flowcore.triggers import all_successful, always_run
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.edges import unmapped


class Add(Task):
    def run(self, x: int, y: int = 2) -> int:
        return x + y


# Defined without `from __future__ import annotations`, so its annotations are real types.
_NAMESPACE: dict[str, Any] = {"Task": Task}
_TYPED_SOURCE = (
    "class Typed(Task):\n    def run(self, x: int, y: str = 'a') -> int:\n        return x\n"
)
exec(compile(_TYPED_SOURCE, "<typed>", "exec", dont_inherit=True), _NAMESPACE)
Typed: type[Task] = _NAMESPACE["Typed"]


class Pair(Task):
    def run(self) -> tuple[int, int]:
        return 1, 2


def edge_summary(flow: Flow, task_: Task) -> list[tuple[str | None, str, bool, bool]]:
    """The edges into ``task_`` as sortable tuples (key, upstream name, mapped, flattened)."""
    return sorted(
        ((e.key, e.upstream_task.name, e.mapped, e.flattened) for e in flow.edges_to(task_)),
        key=lambda row: (row[0] or "", row[1:]),
    )


# -- constructor defaults ---------------------------------------------------------------------


def test_defaults_match_prefect() -> None:
    t = Task()
    assert t.name == "Task"
    assert t.slug is None
    assert t.tags == set()
    assert (t.max_retries, t.retry_delay, t.retry_on, t.timeout) == (0, None, None, None)
    assert t.trigger is all_successful
    assert t.skip_on_upstream_skip is True
    assert t.cache_for is None and t.cache_key is None
    assert t.cache_validator is cache_validators.never_use
    assert t.checkpoint is None and t.result is None and t.target is None
    assert t.task_run_name is None
    assert t.state_handlers == []
    assert t.auto_generated is False and t.log_stdout is False
    assert t.nout is None
    assert t.logger.name == "flowcore.Task"


def test_name_defaults_to_class_name_and_can_be_given() -> None:
    assert Add().name == "Add"
    named = Add(name="adder", slug="adder-slug")
    assert (named.name, named.slug) == ("adder", "adder-slug")
    assert named.logger.name == "flowcore.adder"


def test_repr() -> None:
    assert repr(Add(name="x")) == "<Task: x>"


def test_every_constructor_argument_is_stored() -> None:
    def handler(task_: Task, old: Any, new: Any) -> Any:
        return new

    result = PrefectResult()
    t = Task(
        trigger=always_run,
        skip_on_upstream_skip=False,
        cache_for=timedelta(minutes=1),
        cache_key="shared",
        checkpoint=False,
        state_handlers=[handler],
        log_stdout=True,
        result=result,
        task_run_name="run-{x}",
        nout=3,
    )
    assert t.trigger is always_run
    assert t.skip_on_upstream_skip is False
    assert t.cache_for == timedelta(minutes=1)
    assert t.cache_validator is cache_validators.duration_only
    assert t.cache_key == "shared"
    assert t.checkpoint is False
    assert t.state_handlers == [handler]
    assert t.log_stdout is True
    assert t.result is result
    assert t.task_run_name == "run-{x}"
    assert t.nout == 3


def test_identity_hash_and_equality() -> None:
    a, b = Task(), Task()
    assert a != b
    same = a
    assert a == same and a is not a.copy()
    assert len({a, b, a}) == 2
    assert hash(a) != hash(b)


# -- retries -----------------------------------------------------------------------------------


def test_max_retries_without_retry_delay_is_rejected() -> None:
    with pytest.raises(ValueError, match="retry_delay"):
        Task(max_retries=2)


def test_retry_delay_without_max_retries_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        Task(retry_delay=timedelta(seconds=1))


def test_retries_with_delay() -> None:
    t = Task(max_retries=3, retry_delay=timedelta(seconds=2))
    assert (t.max_retries, t.retry_delay) == (3, timedelta(seconds=2))


def test_zero_retry_delay_is_a_delay() -> None:
    assert Task(max_retries=1, retry_delay=timedelta(0)).retry_delay == timedelta(0)


def test_retry_defaults_come_from_config() -> None:
    with set_temporary_config({"tasks.defaults.max_retries": 2, "tasks.defaults.retry_delay": 5}):
        t = Task()
    assert t.max_retries == 2
    # an int in the config is read as seconds
    assert t.retry_delay == timedelta(seconds=5)


def test_config_retry_delay_is_ignored_without_retries() -> None:
    with set_temporary_config({"tasks.defaults.retry_delay": 5}):
        assert Task().retry_delay is None
        assert Task(max_retries=1).retry_delay == timedelta(seconds=5)


def test_config_max_retries_without_delay_fails_at_construction() -> None:
    with set_temporary_config({"tasks.defaults.max_retries": 2}), pytest.raises(ValueError):
        Task()


def test_explicit_max_retries_zero_overrides_config() -> None:
    with set_temporary_config({"tasks.defaults.max_retries": 2, "tasks.defaults.retry_delay": 5}):
        t = Task(max_retries=0)
    assert (t.max_retries, t.retry_delay) == (0, None)


def test_retry_on_single_type_becomes_a_set() -> None:
    t = Task(max_retries=1, retry_delay=timedelta(seconds=1), retry_on=ValueError)
    assert t.retry_on == {ValueError}


def test_retry_on_iterable() -> None:
    t = Task(max_retries=1, retry_delay=timedelta(seconds=1), retry_on=[ValueError, KeyError])
    assert t.retry_on == {ValueError, KeyError}


@pytest.mark.parametrize("bad", [3, int, "ValueError", [ValueError, 3], BaseException])
def test_retry_on_must_hold_exception_types(bad: Any) -> None:
    with pytest.raises(TypeError, match="retry_on"):
        Task(max_retries=1, retry_delay=timedelta(seconds=1), retry_on=bad)


def test_retry_on_needs_max_retries() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        Task(retry_on=ValueError)


# -- timeout ----------------------------------------------------------------------------------


def test_timeout_int() -> None:
    assert Task(timeout=5).timeout == 5


def test_timeout_timedelta_becomes_seconds() -> None:
    assert Task(timeout=timedelta(minutes=1, seconds=3)).timeout == 63


def test_sub_second_timeout_warns_and_truncates() -> None:
    with pytest.warns(UserWarning, match="second"):
        t = Task(timeout=timedelta(seconds=3.5))
    assert t.timeout == 3


@pytest.mark.parametrize("bad", [3.5, "3"])
def test_timeout_must_be_int_or_timedelta(bad: Any) -> None:
    with pytest.raises(TypeError, match="timeout"):
        Task(timeout=bad)


@pytest.mark.parametrize("negative", [-1, timedelta(seconds=-5)])
def test_a_negative_timeout_is_refused_at_creation(negative: Any) -> None:
    # (it was accepted, and then failed the task with "itimer_error(22, 'Invalid
    # argument')" on the main thread, or timed it out at once on another)
    with pytest.raises(ValueError, match=r"Task 'Task': timeout=.* is negative; give the"):
        Task(timeout=negative)
    assert Task(timeout=0).timeout == 0  # no timeout, as before


def test_timeout_default_comes_from_config() -> None:
    with set_temporary_config({"tasks.defaults.timeout": 7}):
        assert Task().timeout == 7
        assert Task(timeout=3).timeout == 3


# -- handlers, tags, caching, results --------------------------------------------------------


@pytest.mark.parametrize("bad", [{print}, print])
def test_state_handlers_must_be_a_sequence(bad: Any) -> None:
    with pytest.raises(TypeError, match="state_handlers"):
        Task(state_handlers=bad)


def test_state_handlers_tuple_accepted() -> None:
    assert list(Task(state_handlers=(print,)).state_handlers) == [print]


def test_on_failure_is_appended_to_state_handlers() -> None:
    def handler(task_: Task, old: Any, new: Any) -> Any:
        return new

    calls: list[tuple[Task, Any]] = []
    t = Task(state_handlers=[handler], on_failure=lambda task_, state: calls.append((task_, state)))
    assert len(t.state_handlers) == 2
    assert t.state_handlers[0] is handler


def test_on_failure_fires_only_for_failed_states() -> None:
    from flowcore.engine.state import Failed, Running, Success

    calls: list[Any] = []
    t = Task(on_failure=lambda task_, state: calls.append((task_, state)))
    callback = t.state_handlers[0]
    failed = Failed("boom")
    assert callback(t, Running(), Success()).is_successful()
    assert calls == []
    assert callback(t, Running(), failed) is failed
    assert calls == [(t, failed)]


def test_on_failure_runs_in_a_flow() -> None:
    calls: list[str] = []

    @task(on_failure=lambda task_, state: calls.append(f"{task_.name}:{type(state).__name__}"))
    def boom() -> None:
        raise ValueError("no")

    with Flow("f") as flow:
        boom()
    assert flow.run().is_failed()
    assert calls == ["boom:Failed"]


def test_tags_as_string_are_rejected() -> None:
    with pytest.raises(TypeError, match="tags"):
        Task(tags="abc")


def test_tags_any_iterable() -> None:
    assert Task(tags=["a", "b", "a"]).tags == {"a", "b"}
    assert Task(tags=("c",)).tags == {"c"}


def test_tags_context_adds_and_nests() -> None:
    with tags("a", "b"):
        with tags("c"):
            inner = Task(tags=["d"])
        outer = Task()
    after = Task()
    assert inner.tags == {"a", "b", "c", "d"}
    assert outer.tags == {"a", "b"}
    assert after.tags == set()


def test_cache_validator_without_cache_for_warns() -> None:
    with pytest.warns(UserWarning, match="cache_for"):
        t = Task(cache_validator=cache_validators.all_inputs)
    assert t.cache_validator is cache_validators.all_inputs


def test_never_use_without_cache_for_does_not_warn() -> None:
    assert Task(cache_validator=cache_validators.never_use).cache_for is None


def test_cache_validator_with_cache_for_is_kept() -> None:
    t = Task(cache_for=timedelta(1), cache_validator=cache_validators.all_inputs)
    assert t.cache_validator is cache_validators.all_inputs


@pytest.mark.parametrize(
    ("factory", "what"),
    [
        (cache_validators.partial_inputs_only, "inputs"),
        (cache_validators.partial_parameters_only, "parameters"),
    ],
)
def test_an_uncalled_validator_factory_fails_at_creation(factory: Any, what: str) -> None:
    name = factory.__name__
    with pytest.raises(TypeError) as raised:
        Task(name="fetch", cache_for=timedelta(hours=1), cache_validator=factory)
    message = str(raised.value)
    assert f"Task 'fetch': cache_validator={name}" in message
    assert f"call it with the {what} to compare" in message and f"{name}(['x'])" in message
    called = Task(cache_for=timedelta(hours=1), cache_validator=factory(["x"]))
    assert called.cache_validator.validate_on == ["x"]


def test_a_validator_that_cannot_take_three_arguments_fails_at_creation() -> None:
    def by_state(state: Any) -> bool:
        return True

    with pytest.raises(TypeError, match=r"'fetch': cache_validator=<function .*by_state.* cannot"):
        Task(name="fetch", cache_for=timedelta(hours=1), cache_validator=by_state)
    assert Task(cache_for=timedelta(hours=1), cache_validator=lambda *a: True)
    assert Task(cache_for=timedelta(hours=1), cache_validator=lambda s, i, p, extra=0: True)


@pytest.mark.parametrize("argument", ["cache_for", "cache_expiration"])
def test_a_cache_duration_past_the_last_date_fails_at_creation(argument: str) -> None:
    extra = {} if argument == "cache_for" else {"cache_key_fn": lambda c, i: "k"}
    huge = {argument: timedelta(days=999_999_999), **extra}
    with pytest.raises(
        ValueError, match=rf"'fetch': {argument}=timedelta\(days=999999999\) is too"
    ):
        Task(name="fetch", **huge)
    assert Task(name="fetch", **{argument: timedelta(days=365 * 1000), **extra})


def test_refresh_cache_must_be_a_bool_or_none() -> None:
    with pytest.raises(TypeError, match=r"'fetch': refresh_cache='no' must be True .*None"):
        Task(name="fetch", refresh_cache="no")
    assert [Task(refresh_cache=v).refresh_cache for v in (None, True, False)] == [None, True, False]


def test_an_empty_cache_key_fails_at_creation() -> None:
    with pytest.raises(ValueError, match=r"'fetch': cache_key='' must not be empty.*leave"):
        Task(name="fetch", cache_for=timedelta(hours=1), cache_key="")


def test_result_and_target_give_a_copy_located_at_the_target() -> None:
    result = PrefectResult()
    t = Task(result=result, target="out/{task_name}.txt")
    assert t.result is not result
    assert isinstance(t.result, PrefectResult)
    assert t.result.location == "out/{task_name}.txt"
    assert t.target == "out/{task_name}.txt"
    assert result.location is None


def test_result_location_and_different_target_warn() -> None:
    with pytest.warns(UserWarning, match="target"):
        t = Task(result=PrefectResult(location="elsewhere"), target="x")
    assert t.result.location == "x"


def test_result_location_equal_to_target_does_not_warn() -> None:
    assert Task(result=PrefectResult(location="x"), target="x").result.location == "x"


def test_target_without_result_keeps_result_none() -> None:
    t = Task(target="x")
    assert (t.result, t.target) == (None, "x")


# -- the run signature ------------------------------------------------------------------------


def test_varargs_run_rejected_at_class_creation() -> None:
    with pytest.raises(ValueError, match=r"\*args"):

        class Bad(Task):
            def run(self, *args: Any) -> None:
                pass


@pytest.mark.parametrize("reserved", ["upstream_tasks", "mapped", "task_args", "flow"])
def test_reserved_run_argument_names_rejected_at_class_creation(reserved: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def run(self, {reserved}=None):\n    pass", namespace)
    with pytest.raises(ValueError, match=reserved):
        type("Bad", (Task,), {"run": namespace["run"]})


def test_positional_only_run_parameters_rejected_when_the_task_is_made() -> None:
    # verified against prefect 1.4.1: the class can be defined; creating a task raises
    class Bad(Task):
        def run(self, x: int, /, y: int) -> None:
            pass

    with pytest.raises(
        TypeError,
        match=re.escape(
            "Found positional-only parameters in the function signature for task Bad: ['x']."
        ),
    ):
        Bad()


def test_var_keyword_run_is_allowed() -> None:
    class Kw(Task):
        def run(self, **kwargs: Any) -> dict[str, Any]:
            return kwargs

    assert Kw().run(a=1) == {"a": 1}


def test_run_called_directly_is_plain_python() -> None:
    from flowcore import context

    class Probe(Task):
        def run(self, x: int, y: int = 1) -> tuple[Any, ...]:
            return x, y, context.get("task_name"), context.get("flow")

    assert Probe().run(3) == (3, 1, None, None)
    assert Task().run() is None


def test_signature_adds_call_extras_keyword_only() -> None:
    sig = inspect.signature(Typed())
    assert list(sig.parameters) == ["x", "y", "mapped", "task_args", "upstream_tasks", "flow"]
    assert str(sig) == (
        "(x: int, y: str = 'a', *, mapped: bool = False, task_args: dict = None, "
        "upstream_tasks: Iterable[Any] = None, flow: 'Flow' = None) -> 'Task'"
    )


def test_signature_keeps_var_keyword_last() -> None:
    class Kw(Task):
        def run(self, a: int, **kw: Any) -> None:
            pass

    params = inspect.signature(Kw()).parameters
    assert list(params) == ["a", "mapped", "task_args", "upstream_tasks", "flow", "kw"]
    assert params["kw"].kind is inspect.Parameter.VAR_KEYWORD


def test_inputs_and_outputs() -> None:
    assert Typed().inputs() == {
        "x": {"type": int, "default": None, "required": True},
        "y": {"type": str, "default": "a", "required": False},
    }
    assert Typed().outputs() is int
    # string annotations (from __future__ import annotations) are reported as written
    assert Add().inputs()["x"]["type"] == "int"
    assert Task().inputs() == {}

    @task
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    assert untyped.outputs() is Any
    assert untyped.inputs() == {"x": {"type": Any, "default": None, "required": True}}


# -- nout -------------------------------------------------------------------------------------


def _nout_of(annotation: str) -> int | None:
    namespace: dict[str, Any] = {"Tuple": typing.Tuple, "Task": Task}  # noqa: UP006
    exec(f"class T(Task):\n    def run(self) -> {annotation}:\n        pass", namespace)
    return namespace["T"]().nout  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        ("Tuple[int, str]", 2),
        ("tuple[int, str, float]", 3),
        ("Tuple[int]", 1),
        ("Tuple[()]", 0),
        ("tuple[()]", 0),
        ("Tuple", None),
        ("tuple", None),
        ("Tuple[int, ...]", None),
        ("tuple[int, ...]", None),
        ("int", None),
        ("None", None),
        ("list[int]", None),
    ],
)
def test_nout_inferred_from_return_annotation(annotation: str, expected: int | None) -> None:
    assert _nout_of(annotation) == expected


def test_nout_inferred_from_string_annotations() -> None:
    # this module uses `from __future__ import annotations`: Pair's annotation is a string
    assert Pair().nout == 2


def test_explicit_nout_wins_over_annotation() -> None:
    assert Pair(nout=5).nout == 5


# -- metaclass and reserved-attribute warnings ------------------------------------------------


def test_passing_a_task_to_a_task_constructor_warns() -> None:
    upstream = Task()
    # verified against prefect 1.4.1 (its first sentence)
    with pytest.warns(UserWarning, match="A Task was passed as an argument to Add"):
        Add(checkpoint=upstream)  # type: ignore[arg-type]
    # (a Task as the name: Prefect 1.4.1 then raised TypeError too)
    with pytest.warns(UserWarning, match="A Task was passed as an argument to Task"):
        with pytest.raises(TypeError, match="A task's name is a str; Task\\(\\) got Task"):
            Task(upstream)  # type: ignore[arg-type]


def test_subclass_setting_reserved_attribute_warns() -> None:
    class Clash(Task):
        def __init__(self) -> None:
            self.name = "mine"
            self.tags = {"x"}
            super().__init__()

    # verified against prefect 1.4.1: one warning per attribute
    with pytest.warns(UserWarning) as record:
        t = Clash()
    assert [str(w.message).split(",")[0] for w in record] == [
        "`Clash` sets a `name` attribute",
        "`Clash` sets a `tags` attribute",
    ]
    assert t.name == "Clash"


def test_subclass_setting_other_attributes_does_not_warn() -> None:
    class Fine(Task):
        def __init__(self) -> None:
            self.foo = "x"
            super().__init__()

    assert Fine().foo == "x"


# -- copy ---------------------------------------------------------------------------------------


def test_copy_is_a_shallow_copy_with_task_args() -> None:
    t = Task(name="a", tags=["x"])
    c = t.copy(name="b", max_retries=1)
    assert c is not t and type(c) is Task
    assert (c.name, c.max_retries, t.name, t.max_retries) == ("b", 1, "a", 0)
    assert c.tags == {"x"} and c.tags is not t.tags


def test_copy_appends_copy_to_an_existing_slug() -> None:
    t = Task(slug="s")
    assert t.copy().slug == "s-copy"
    assert t.copy(slug="z").slug == "z"
    assert Task().copy().slug is None


def test_copy_rejects_unknown_attributes() -> None:
    with pytest.raises(AttributeError, match="foo"):
        Task().copy(foo=1)


def test_copy_merges_context_tags() -> None:
    t = Task(tags=["z"])
    with tags("a"):
        c = t.copy()
    assert c.tags == {"a", "z"}
    assert t.tags == {"z"}


def test_copy_redoes_result_target_reconciliation() -> None:
    t = Task(result=PrefectResult())
    c = t.copy(target="t/{task_name}")
    assert c.result.location == "t/{task_name}"
    assert t.result.location is None


def test_copy_of_task_with_edges_in_active_flow_warns() -> None:
    with Flow("f") as flow:
        a = Task(name="a")
        b = Add()(a)
        with pytest.warns(UserWarning, match="dependencies"):
            b.copy().bind(1, flow=flow)


def test_copy_of_task_without_edges_does_not_warn() -> None:
    with Flow("f") as flow:
        a = Task()
        flow.add_task(a)
        flow.add_task(a.copy())
    assert len(flow.tasks) == 2


def test_copy_outside_its_flow_does_not_warn() -> None:
    with Flow("f"):
        b = Add()(1)
    assert b.copy().name == "Add"


# -- __call__ and bind --------------------------------------------------------------------------


def test_call_copies_and_binds_in_the_active_flow() -> None:
    template = Add()
    with Flow("f") as flow:
        first = template(1)
        second = template(2)
    assert first is not template and second is not first
    assert flow.tasks == {first, second}
    assert template not in flow.tasks
    assert dict(flow.constants[first]) == {"x": 1}
    assert dict(flow.constants[second]) == {"x": 2}


def test_calling_a_template_created_in_the_block_does_not_warn_unused() -> None:
    with Flow("f") as flow:
        template = Add()
        template(1)
    assert len(flow.tasks) == 1


def test_call_with_task_args() -> None:
    with Flow("f"):
        t = Add()(1, task_args={"name": "renamed", "tags": ["q"]})
    assert t.name == "renamed" and t.tags == {"q"}


def test_call_with_unknown_task_arg() -> None:
    with pytest.raises(AttributeError, match="nope"), Flow("f"):
        Add()(1, task_args={"nope": 1})


def test_missing_required_argument_names_the_task() -> None:
    with pytest.raises(TypeError, match=r"Add.*missing a required argument: 'x'"), Flow("f"):
        Add()(y=1)


def test_unexpected_and_extra_arguments_fail_at_build_time() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"), Flow("f"):
        Add()(1, z=3)
    with pytest.raises(TypeError, match="too many positional arguments"), Flow("f"):
        Add()(1, 2, 3)


def test_call_without_a_flow_raises_with_a_hint() -> None:
    # verified against prefect 1.4.1: a Task class is named as `Add(...).run(...)`
    with pytest.raises(
        ValueError, match=r"Could not infer an active Flow context.*`Add\(\.\.\.\)\.run"
    ):
        Add()(1)


def test_call_with_explicit_flow() -> None:
    flow = Flow("f")
    t = Add()(1, flow=flow)
    assert t in flow.tasks and dict(flow.constants[t]) == {"x": 1}


def test_bind_binds_in_place() -> None:
    t = Add()
    with Flow("f") as flow:
        assert t.bind(1, 2) is t
    assert flow.tasks == {t}
    assert dict(flow.constants[t]) == {"x": 1, "y": 2}


def test_bind_twice_without_validation_rebinds_constants() -> None:
    t = Add()
    with Flow("f") as flow:
        t.bind(1, 2)
        t.bind(3, 4)
    assert dict(flow.constants[t]) == {"x": 3, "y": 4}


def test_bind_twice_with_validation_is_detected() -> None:
    t = Add()
    with set_temporary_config({"flows.eager_edge_validation": True}), Flow("f"):
        t.bind(Task(name="a"), 2)
        with pytest.raises(ValueError, match='Argument "x" .* has already been assigned'):
            t.bind(Task(name="b"), 4)


def test_bind_merges_context_tags() -> None:
    t = Task(tags=["y"])
    with Flow("f"), tags("z"):
        t.bind()
    assert t.tags == {"y", "z"}


def test_var_keyword_arguments_are_expanded_into_keys() -> None:
    class Kw(Task):
        def run(self, a: int, **kw: Any) -> dict[str, Any]:
            return {"a": a, **kw}

    with Flow("f") as flow:
        up = Task(name="up")
        t = Kw()(1, b=up, c=3)
    assert [e.key for e in flow.edges_to(t)] == ["b"]
    assert dict(flow.constants[t]) == {"a": 1, "c": 3}


def test_python_defaults_create_no_edge_and_apply_at_run_time() -> None:
    @task
    def one() -> int:
        return 1

    with Flow("f") as flow:
        t = Add()(one())
    assert [e.key for e in flow.edges_to(t)] == ["x"]
    assert dict(flow.constants[t]) == {}
    assert flow.run().result[t].result == 3


def test_upstream_tasks_add_state_only_edges() -> None:
    with Flow("f") as flow:
        a = Task(name="a")
        t = Add()(1, upstream_tasks=[a, 5])
    summary = edge_summary(flow, t)
    assert summary == [(None, "5", False, False), (None, "a", False, False)]
    constant = next(e.upstream_task for e in flow.edges_to(t) if e.upstream_task.name == "5")
    assert isinstance(constant, Constant) and constant in flow.tasks


# -- map ----------------------------------------------------------------------------------------


def test_map_rejects_unsubscriptable_positional_arguments() -> None:
    with pytest.raises(TypeError, match="map"), Flow("f"):
        Add().map(1)


def test_map_accepts_annotations_and_strings() -> None:
    with Flow("f") as flow:
        t = Add().map("ab", y=unmapped("c"))
    assert flow.run().result[t].result == ["ac", "bc"]


def test_map_resets_nout_unless_given() -> None:
    with Flow("f"):
        p = Pair()
        m = p.map(upstream_tasks=[[1, 2]])
        m3 = p.map(upstream_tasks=[[1, 2]], task_args={"nout": 3})
    assert (p.nout, m.nout, m3.nout) == (2, None, 3)


def test_map_edges_are_mapped_unless_unmapped() -> None:
    with Flow("f") as flow:
        a, u = Task(name="a"), Task(name="u")
        m = Add().map([1, 2], y=unmapped(a), upstream_tasks=[u])
        m2 = Add().map(x=a, y=3, upstream_tasks=[unmapped(u)])
    assert edge_summary(flow, m) == [
        (None, "u", True, False),
        ("x", "[1, 2]", True, False),
        ("y", "a", False, False),
    ]
    assert edge_summary(flow, m2) == [
        (None, "u", False, False),
        ("x", "a", True, False),
        ("y", "3", True, False),
    ]
    # constants on mapped edges stay real Constant tasks
    assert dict(flow.constants[m]) == {} and dict(flow.constants[m2]) == {}


def test_map_runs_over_its_inputs() -> None:
    with Flow("f") as flow:
        m = Add().map([1, 2, 3], y=unmapped(10))
    state = flow.run()
    assert state.result[m].result == [11, 12, 13]
    assert len(state.result[m].map_states) == 3


def test_map_without_flow_raises() -> None:
    with pytest.raises(ValueError, match="Could not infer an active Flow context"):
        Add().map([1])


def test_map_with_explicit_flow() -> None:
    flow = Flow("f")
    m = Add().map([1, 2], flow=flow)
    assert flow.run().result[m].result == [3, 4]


# -- indexing, unpacking, |, pipe ---------------------------------------------------------------


def test_getitem_names_use_repr_of_the_key() -> None:
    with Flow("f"):
        p = Pair()()
        assert p[0].name == "Pair[0]"
        assert p["a"].name == "Pair['a']"
        key = Task(name="key")
        assert p[key].name == "Pair[key]"


def test_getitem_inherits_checkpoint_and_result() -> None:
    result = PrefectResult()
    with Flow("f"):
        t = Task(checkpoint=False, result=result)
        item = t[0]
    assert isinstance(item, GetItem)
    assert item.checkpoint is False and item.result is result


def test_getitem_edges() -> None:
    with Flow("f") as flow:
        p = Pair()()
        key = Task(name="key")
        by_const = p[1]
        by_task = p[key]
    assert edge_summary(flow, by_const) == [("task_result", "Pair", False, False)]
    assert dict(flow.constants[by_const]) == {"key": 1}
    assert edge_summary(flow, by_task) == [
        ("key", "key", False, False),
        ("task_result", "Pair", False, False),
    ]


def test_tuple_unpacking_with_nout() -> None:
    @task(nout=2)
    def pair() -> Any:
        return 1, 2

    with Flow("f") as flow:
        a, b = pair()
    assert (a.name, b.name) == ("pair[0]", "pair[1]")
    state = flow.run()
    assert (state.result[a].result, state.result[b].result) == (1, 2)


def test_tuple_unpacking_with_annotation() -> None:
    with Flow("f") as flow:
        a, b = Pair()()
    state = flow.run()
    assert (state.result[a].result, state.result[b].result) == (1, 2)


def test_unpacking_without_nout_raises_type_error() -> None:
    with Flow("f"), pytest.raises(TypeError, match="not iterable"):
        a, b = Add()(1)


def test_unpacking_with_wrong_nout() -> None:
    with Flow("f"), pytest.raises(ValueError, match="too many values"):
        a, b = Task(nout=3)()


def test_or_makes_a_state_dependency_and_returns_the_right_side() -> None:
    with Flow("f") as flow:
        a, b, c = Task(name="a"), Task(name="b"), Task(name="c")
        assert (a | b | c) is c
    assert edge_summary(flow, b) == [(None, "a", False, False)]
    assert edge_summary(flow, c) == [(None, "b", False, False)]
    assert len(flow.tasks) == 3


def test_ror_makes_the_left_value_upstream() -> None:
    with Flow("f") as flow:
        d = Task(name="d")
        assert (3 | d) is d
    (edge,) = flow.edges_to(d)
    assert edge.key is None
    assert isinstance(edge.upstream_task, Constant) and edge.upstream_task.value == 3


def test_pipe_calls_the_other_task() -> None:
    with Flow("f") as flow:
        a = Task(name="a")
        b = a.pipe(Add(), y=10)
    assert edge_summary(flow, b) == [("x", "a", False, False)]
    assert dict(flow.constants[b]) == {"y": 10}


def test_pipe_with_an_annotation_class() -> None:
    with Flow("f") as flow:
        a = flow.add_task(Task(name="a"))
        assert a.pipe(unmapped) is a


def test_pipe_rejects_a_self_keyword() -> None:
    with pytest.raises(ValueError, match='keyword argument "self"'), Flow("f"):
        Task().pipe(Add(), self=1)


# -- set_upstream / set_downstream / set_dependencies -------------------------------------------


def test_set_upstream_and_downstream() -> None:
    flow = Flow("f")
    a, b, c, d = (Task(name=n) for n in "abcd")
    assert b.set_upstream(a, flow=flow) is b
    assert b.set_downstream(c, flow=flow, key="x") is b
    d.set_upstream(c, flow=flow, key="y", mapped=True)
    d.set_upstream([a, 1], flow=flow)
    assert edge_summary(flow, b) == [(None, "a", False, False)]
    assert edge_summary(flow, c) == [("x", "b", False, False)]
    assert edge_summary(flow, d) == [(None, "List", False, False), ("y", "c", True, False)]


def test_set_upstream_in_active_flow() -> None:
    with Flow("f") as flow:
        a, b = Task(name="a"), Task(name="b")
        b.set_upstream(a)
        a.set_downstream(Task(name="c"), mapped=True)
    assert {(e.upstream_task.name, e.downstream_task.name, e.mapped) for e in flow.edges} == {
        ("a", "b", False),
        ("a", "c", True),
    }


def test_set_upstream_with_a_constant_key_uses_flow_constants() -> None:
    flow = Flow("f")
    t = Add()
    t.set_upstream(5, flow=flow, key="x")
    assert flow.edges == set() and dict(flow.constants[t]) == {"x": 5}


def test_set_dependencies_without_a_flow_raises() -> None:
    for call in (
        lambda: Task().set_upstream(Task()),
        lambda: Task().set_downstream(Task()),
        lambda: Task().set_dependencies(),
    ):
        with pytest.raises(ValueError, match="flow"):
            call()


def test_set_dependencies_mapped_applies_to_upstream_and_keyword_edges_only() -> None:
    flow = Flow("f")
    t, up, down, kw = Task(name="t"), Task(name="up"), Task(name="down"), Task(name="kw")
    t.set_dependencies(
        flow=flow,
        upstream_tasks=[up],
        downstream_tasks=[down],
        keyword_tasks={"k": kw},
        mapped=True,
    )
    flags = {(e.upstream_task.name, e.downstream_task.name): e.mapped for e in flow.edges}
    assert flags == {("up", "t"): True, ("kw", "t"): True, ("t", "down"): False}


def test_parameter_cannot_be_given_upstream_dependencies() -> None:
    with pytest.raises(ValueError, match="root"), Flow("f"):
        Parameter("p").set_upstream(Task())


def test_edges_are_edge_objects() -> None:
    with Flow("f") as flow:
        t = Add()(Task(name="a"))
    (edge,) = flow.edges
    assert isinstance(edge, Edge) and edge.downstream_task is t


def test_a_task_name_that_is_not_a_str_is_a_type_error() -> None:
    """Prefect 1.4.1 raised a TypeError for it too (from deep inside, when the task was
    tagged); flowcore says what it got and what it takes."""
    with pytest.raises(TypeError, match=r"^A task's name is a str; Task\(\) got int 3\. E\.g\."):
        Task(name=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="A task's name is a str; FunctionTask"):
        task(lambda: 1, name=3)  # type: ignore[arg-type]
