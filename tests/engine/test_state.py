"""States: hierarchy, predicates, constructor defaults, results, equality, pickling.

Expected values (colors, class orders, predicate tables, pickled messages) were checked
against Prefect 1.4.1.
"""

from __future__ import annotations

import copy
import datetime
import threading
from typing import Any

import cloudpickle
import pendulum
import pytest

from flowcore import context
from flowcore.engine import signals
from flowcore.engine import state as st
from flowcore.engine.result import NoResult, Result
from flowcore.engine.state import (
    Cached,
    Cancelled,
    Cancelling,
    ClientFailed,
    Crashed,
    Failed,
    Finished,
    Looped,
    Mapped,
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
    TimedOut,
    TriggerFailed,
    ValidationFailed,
    _MetaState,
)


class DictResult(Result):
    """A real (if tiny) storage backend: serialized bytes in a dict."""

    def __init__(self, store: dict[str, bytes], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store

    def _read_bytes(self, location: str) -> bytes:
        return self.store[location]

    def _write_bytes(self, location: str, data: bytes) -> None:
        self.store[location] = data

    def _exists(self, location: str) -> bool:
        return location in self.store


ALL_PUBLIC = [
    "Pending", "Scheduled", "Paused", "Resume", "Retrying", "ClientFailed", "Submitted",
    "Queued", "Running", "Cancelling", "Finished", "Looped", "Success", "Cached", "Mapped",
    "Skipped", "Cancelled", "Failed", "TimedOut", "TriggerFailed", "ValidationFailed",
    "Crashed",  # flowcore's own, last so that Prefect 1's list is a prefix
]  # fmt: skip

PREDICATES = [
    "is_pending", "is_queued", "is_retrying", "is_running", "is_cached", "is_finished",
    "is_looped", "is_scheduled", "is_submitted", "is_skipped", "is_successful", "is_failed",
    "is_mapped", "is_meta_state",
]  # fmt: skip

# class -> the predicates that are True for a default instance (Prefect 1.4.1)
TRUE_PREDICATES: dict[type[State], set[str]] = {
    State: set(),
    Pending: {"is_pending"},
    Scheduled: {"is_pending", "is_scheduled"},
    Paused: {"is_pending", "is_scheduled"},
    Resume: {"is_pending", "is_scheduled"},
    Retrying: {"is_pending", "is_retrying", "is_scheduled"},
    _MetaState: {"is_meta_state"},
    ClientFailed: {"is_meta_state"},
    Submitted: {"is_submitted", "is_meta_state"},
    Queued: {"is_queued", "is_scheduled", "is_meta_state"},
    Running: {"is_running"},
    Cancelling: {"is_running"},
    Finished: {"is_finished"},
    Looped: {"is_finished", "is_looped"},
    Success: {"is_finished", "is_successful"},
    Cached: {"is_cached", "is_finished", "is_successful"},
    Mapped: {"is_finished", "is_successful", "is_mapped"},
    Skipped: {"is_finished", "is_skipped", "is_successful"},
    Cancelled: {"is_finished"},
    Failed: {"is_finished", "is_failed"},
    TimedOut: {"is_finished", "is_failed"},
    TriggerFailed: {"is_finished", "is_failed"},
    ValidationFailed: {"is_finished", "is_failed"},
    Crashed: {"is_finished", "is_failed"},
}

COLORS = {
    State: "#696969", Pending: "#7ebdff", Scheduled: "#ffab00", Paused: "#99a8e8",
    Resume: "#f58c0c", Retrying: "#f66a0a", ClientFailed: "#eb0000", Submitted: "#ffdf5d",
    Queued: "#ffea7f", Running: "#3d67ff", Cancelling: "#E8E8E8", Finished: "#003ccb",
    Looped: "#003ccb", Success: "#28a745", Cached: "#34d058", Mapped: "#003ccb",
    Skipped: "#62757f", Cancelled: "#bdbdbd", Failed: "#eb0000", TimedOut: "#ff4e33",
    TriggerFailed: "#ff5131", ValidationFailed: "#ff5131", Crashed: "#8b0000",
}  # fmt: skip


# -- hierarchy ------------------------------------------------------------------------


def test_state_children_lists_every_public_class_depth_first() -> None:
    assert State.children(names_only=True) == ALL_PUBLIC
    assert State.children() == [getattr(st, name) for name in ALL_PUBLIC]


def test_hidden_meta_state_is_not_listed_but_its_subclasses_are() -> None:
    assert "_MetaState" not in State.children(names_only=True)
    assert _MetaState.children(names_only=True) == ["ClientFailed", "Submitted", "Queued"]
    assert Queued.parents(names_only=True) == ["State"]


@pytest.mark.parametrize(
    ("cls", "parents"),
    [
        (State, []),
        (Retrying, ["Scheduled", "Pending", "State"]),
        (Cancelling, ["Running", "State"]),
        (Cached, ["Success", "Finished", "State"]),
        (TriggerFailed, ["Failed", "Finished", "State"]),
        (Submitted, ["State"]),
    ],
)
def test_parents_nearest_first(cls: type[State], parents: list[str]) -> None:
    assert cls.parents(names_only=True) == parents
    assert cls.parents() == [getattr(st, name) for name in parents]


def test_include_self_appends_the_class_last() -> None:
    assert Success.children(include_self=True, names_only=True) == [
        "Cached", "Mapped", "Skipped", "Success",
    ]  # fmt: skip
    assert Failed.children(include_self=True) == [
        TimedOut,
        TriggerFailed,
        ValidationFailed,
        Crashed,
        Failed,
    ]
    assert Cached.parents(include_self=True, names_only=True) == [
        "Success", "Finished", "State", "Cached",
    ]  # fmt: skip


def test_leaf_classes_have_no_children() -> None:
    for cls in (Paused, Looped, Cached, TimedOut, Queued):
        assert cls.children() == []


def test_a_user_subclass_shows_up_in_children() -> None:
    class MySuccess(Success):
        pass

    assert "MySuccess" in Success.children(names_only=True)
    assert MySuccess().is_successful()
    assert MySuccess.parents(names_only=True) == ["Success", "Finished", "State"]


# -- predicates -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(TRUE_PREDICATES), ids=lambda c: c.__name__)
def test_every_predicate_for_every_class(cls: type[State]) -> None:
    state = cls()
    truth = {name for name in PREDICATES if getattr(state, name)()}
    assert truth == TRUE_PREDICATES[cls]


def test_queued_is_scheduled_but_not_pending() -> None:
    queued = Queued(state=Pending())
    assert queued.is_scheduled() and queued.is_queued()
    assert not queued.is_pending()


def test_success_subclasses_count_as_successful_and_failure_subclasses_as_failed() -> None:
    assert all(c().is_successful() for c in (Skipped, Cached, Mapped))
    assert all(c().is_failed() for c in (TimedOut, TriggerFailed, ValidationFailed))
    assert not Looped().is_successful() and not Cancelled().is_failed()


def test_no_paused_cancelled_or_timed_out_predicates() -> None:
    for name in ("is_paused", "is_cancelled", "is_timed_out"):
        assert not hasattr(State(), name)


@pytest.mark.parametrize("cls", list(COLORS), ids=lambda c: c.__name__)
def test_every_class_has_its_prefect_color(cls: type[State]) -> None:
    assert cls.color == COLORS[cls]


def test_colors_cover_every_public_class() -> None:
    # flowcore's own classes only: a user subclass made by another test may still be alive
    ours = {c for c in State.children() if c.__module__ == State.__module__}
    assert set(COLORS) == {State, *ours}


# -- constructor arguments ------------------------------------------------------------


def test_common_attributes_and_defaults() -> None:
    state = State()
    assert state.message is None
    assert state.result is None and state._result is NoResult
    assert state.context == {}
    assert state.cached_inputs == {}


def test_message_may_be_an_exception() -> None:
    error = ValueError("boom")
    state = Failed(error)
    assert state.message is error
    assert repr(state) == '<Failed: "boom">'


def test_context_is_kept_and_empty_context_is_a_fresh_dict() -> None:
    given = {"a": 1}
    assert Running(context=given).context is given
    shared: dict[str, Any] = {}
    one, two = Running(context=shared), Running(context=shared)
    one.context["x"] = 1
    assert two.context == {}


def test_positional_argument_orders_match_prefect() -> None:
    inputs = {"x": Result(1)}
    assert Pending("m", 1, inputs, {"c": 1}).cached_inputs == inputs
    assert Failed("m", 1, inputs, {"c": 1}).context == {"c": 1}
    assert TriggerFailed("m", 1, inputs).cached_inputs == inputs
    assert Looped("m", 1, 7).loop_count == 7
    assert Success("m", 1, {"c": 1}, inputs).cached_inputs == inputs
    assert Retrying("m", 1, None, inputs, {"c": 1}, 4).run_count == 4


def test_scheduled_start_time_defaults_to_now_utc() -> None:
    before = pendulum.now("UTC")
    state = Scheduled()
    after = pendulum.now("UTC")
    assert isinstance(state.start_time, pendulum.DateTime)
    assert state.start_time.timezone_name == "UTC"
    assert before <= state.start_time <= after


@pytest.mark.parametrize("cls", [Scheduled, Paused, Resume, Retrying])
def test_start_time_datetimes_become_pendulum(cls: type[Scheduled]) -> None:
    when = datetime.datetime(2020, 1, 2, 3, 4, tzinfo=datetime.timezone.utc)
    state = cls(start_time=when)
    assert isinstance(state.start_time, pendulum.DateTime)
    assert state.start_time == when


def test_paused_keeps_none_start_time() -> None:
    assert Paused().start_time is None
    assert Paused(start_time=pendulum.datetime(2030, 1, 1)).start_time == pendulum.datetime(
        2030, 1, 1
    )


def test_queued_start_time_defaults_to_now() -> None:
    assert isinstance(Queued().start_time, datetime.datetime)


def test_retrying_run_count_defaults_to_one_or_the_context() -> None:
    assert Retrying().run_count == 1
    assert Retrying(run_count=5).run_count == 5
    with context(task_run_count=3):
        assert Retrying().run_count == 3
        assert Retrying(run_count=9).run_count == 9


def test_scheduled_states_copy_task_run_count_into_their_context() -> None:
    assert "task_run_count" not in Scheduled().context
    with context(task_run_count=3):
        assert Retrying().context == {"task_run_count": 3}
        assert Paused(context={"task_run_count": 1, "a": 2}).context == {
            "task_run_count": 3,
            "a": 2,
        }
        assert Pending().context == {}


def test_looped_loop_count_defaults_to_one_or_the_context() -> None:
    assert Looped().loop_count == 1
    with context(task_loop_count=4):
        assert Looped().loop_count == 4
        assert Looped(loop_count=2).loop_count == 2


ALL_STATE_CLASSES = [getattr(st, name) for name in st.__all__ if name[0].isupper()] + [
    st._MetaState
]


def test_context_tags_come_from_task_tags() -> None:
    assert "tags" not in Success().context
    with context(task_tags={"b", "a"}):
        assert Success().context == {"tags": list({"b", "a"})}
        assert Failed(context={"tags": ["mine"]}).context == {"tags": ["mine"]}
    with context(task_tags=set()):
        assert Pending().context == {"tags": []}


@pytest.mark.parametrize("cls", ALL_STATE_CLASSES, ids=lambda cls: cls.__name__)
def test_every_state_class_copies_task_tags_as_prefect_1_does(cls: type[State]) -> None:
    """Prefect 1.4.1 (verified for all 23 of its state classes, ``_MetaState`` included):
    ``context["tags"] = list(context.task_tags)``: the tags' own iteration order, no
    sorting, and no de-duplication beyond the collection's own (a set has none to do, a
    list keeps its repeats); a ``tags`` given in ``context=`` wins; other given keys stay."""
    tag_set = set("abcdef")
    with context(task_tags=tag_set):
        assert cls().context == {"tags": list(tag_set)}
        assert cls(context={"tags": ["foo"]}).context["tags"] == ["foo"]
        assert cls(context={"x": 1}).context["x"] == 1
    with context(task_tags=["b", "a", "b"]):
        assert cls().context["tags"] == ["b", "a", "b"]
    with context(task_tags=("z", "a")):
        assert cls().context["tags"] == ["z", "a"]
    with context(task_tags="xy"):
        assert cls().context["tags"] == ["x", "y"]
    assert "tags" not in cls().context


def test_a_state_made_by_a_running_task_carries_its_tags() -> None:
    from flowcore import Flow, task

    @task(tags=["beta", "alpha"])
    def tagged() -> int:
        return 1

    with Flow("tags") as flow:
        result = tagged()
    state = flow.run().result[result]
    assert state.context["tags"] == list(result.tags)
    assert sorted(state.context["tags"]) == ["alpha", "beta"]


def test_sizeof_counts_the_result_as_prefect_1_does() -> None:
    """Prefect 1.4.1 (verified): ``State.__sizeof__`` is the instance's own size plus
    ``sys.getsizeof(result)`` (there 40 for ``Success()``, 8080 for a 1000-int list result on
    CPython 3.11, the same figures as here)."""
    import sys

    payload = [1] * 1000
    for cls in (Success, Failed, Pending, Cached, Mapped):
        state = cls(result=payload)
        assert state.__sizeof__() == object.__sizeof__(state) + sys.getsizeof(payload)
        assert sys.getsizeof(state) > sys.getsizeof(payload)
        assert cls().__sizeof__() == object.__sizeof__(cls()) + sys.getsizeof(None)


def test_cached_fields_and_expiration_conversion() -> None:
    expires = datetime.datetime(2031, 5, 6, tzinfo=datetime.timezone.utc)
    state = Cached(
        result=3,
        cached_inputs={"x": Result(1)},
        cached_parameters={"p": 2},
        cached_result_expiration=expires,
        hashed_inputs={"x": "abc"},
    )
    assert isinstance(state.cached_result_expiration, pendulum.DateTime)
    assert state.cached_result_expiration == expires
    assert state.cached_parameters == {"p": 2}
    assert state.hashed_inputs == {"x": "abc"}
    assert state.cached_inputs == {"x": Result(1)}
    assert state.result == 3


def test_cached_defaults() -> None:
    state = Cached()
    assert state.cached_result_expiration is None
    assert state.cached_parameters is None and state.hashed_inputs is None


def test_mapped_map_states_and_n_map_states() -> None:
    children = [Success(result=1), Failed()]
    mapped = Mapped(map_states=children)
    assert mapped.map_states is children and mapped.n_map_states == 2
    assert Mapped(n_map_states=5).n_map_states == 5 and Mapped().map_states == []
    assert Mapped(n_map_states=5, map_states=children).n_map_states == 5
    assert Mapped(n_map_states=0, map_states=children).n_map_states == 2
    mapped.n_map_states = 7
    assert mapped.n_map_states == 7


def test_meta_states_flatten_nested_wrappers() -> None:
    inner = Retrying()
    queued = Queued(state=Submitted(state=ClientFailed(state=inner)))
    assert queued.state is inner
    wrapper = Submitted()
    assert wrapper.state is None
    wrapper.state = Queued(state=inner)
    assert wrapper.state is inner


# -- result vs _result ----------------------------------------------------------------


def test_no_result_and_none_result_both_mean_no_result() -> None:
    assert Success()._result is NoResult
    assert Success(result=None)._result is NoResult


def test_assigning_a_value_wraps_it_in_a_base_result() -> None:
    state = Success(result=5)
    assert type(state._result) is Result and state._result.value == 5
    state.result = None
    assert type(state._result) is Result and state._result is not NoResult
    assert state.result is None


def test_assigning_a_result_stores_it_as_is() -> None:
    stored = Result(7, location="x")
    state = Success(result=stored)
    assert state._result is stored and state.result == 7
    other = Result(8)
    state.result = other
    assert state._result is other


# -- equality, hash, repr -------------------------------------------------------------


def test_equality_needs_the_same_type_and_result() -> None:
    assert Success(result=1) == Success(result=1)
    assert Success(result=1) != Success(result=2)
    assert Success() != Cached()
    assert Success() != "Success"
    assert Success(result=Result(3)) == Success(result=3)


def test_equality_ignores_message_and_context() -> None:
    assert Success("a", context={"x": 1}) == Success("b")


def test_equality_compares_public_attributes() -> None:
    assert Looped(loop_count=2) != Looped(loop_count=3)
    assert Retrying(run_count=1) != Retrying(run_count=2)
    when = pendulum.datetime(2030, 1, 1)
    assert Retrying(start_time=when) == Retrying(start_time=when)
    assert Cached(hashed_inputs={"x": "1"}) != Cached(hashed_inputs={"x": "2"})
    assert Success(cached_inputs={"x": Result(1)}) != Success()
    assert Success(cached_inputs={"x": Result(1)}) == Success(cached_inputs={"x": Result(1)})
    assert Mapped(map_states=[Success()]) != Mapped()


def test_meta_state_equality_ignores_the_wrapped_state() -> None:
    # the wrapped state is stored privately (``_state``), so Prefect 1 does not compare it
    assert Submitted(state=Success(result=1)) == Submitted(state=Success(result=2))


def test_hash_is_identity() -> None:
    one, two = Success(result=1), Success(result=1)
    assert one == two
    assert len({one, two}) == 2
    assert one in {one} and hash(one) == hash(one)


def test_repr_with_and_without_message() -> None:
    assert repr(Success("done")) == '<Success: "done">'
    assert repr(Pending()) == "<Pending>"
    assert repr(Success("")) == '<Success: "">'
    assert repr(TriggerFailed('Trigger was "x"')) == '<TriggerFailed: "Trigger was "x"">'


# -- pickling -------------------------------------------------------------------------


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("bad")
        self.lock = threading.Lock()


def test_states_round_trip_through_cloudpickle() -> None:
    when = pendulum.datetime(2030, 1, 1, tz="UTC")
    for state in (
        Success("ok", result=[1, 2]),
        Retrying(start_time=when, run_count=2, cached_inputs={"x": Result(1)}),
        Cached(result=1, hashed_inputs={"x": "t"}, cached_result_expiration=when),
        Mapped(map_states=[Success(result=1)]),
        Queued(state=Pending(), start_time=when),
    ):
        copy_ = cloudpickle.loads(cloudpickle.dumps(state))
        assert copy_ == state and type(copy_) is type(state)
        assert copy_.message == state.message


def test_pickled_no_result_stays_the_singleton() -> None:
    assert cloudpickle.loads(cloudpickle.dumps(Pending()))._result is NoResult


def test_unpicklable_exception_result_is_replaced_by_a_string() -> None:
    error = Unpicklable()
    state = Failed("m", result=error)
    copy_ = cloudpickle.loads(cloudpickle.dumps(state))
    assert isinstance(copy_.result, str)
    assert copy_.result.startswith("The following exception could not be pickled due to TypeError(")
    assert copy_.result.endswith(f": {error!r}")
    assert state.result is error  # the original is untouched
    assert copy_.message == "m"


def test_picklable_exception_result_is_kept() -> None:
    copy_ = cloudpickle.loads(cloudpickle.dumps(Failed(result=ValueError("v"))))
    assert isinstance(copy_.result, ValueError) and copy_.result.args == ("v",)


def test_signal_results_are_kept_when_pickling() -> None:
    signal = signals.FAIL("x")
    copy_ = cloudpickle.loads(cloudpickle.dumps(signal.state))
    assert isinstance(copy_.result, signals.FAIL)
    assert isinstance(copy_.result.state, Failed)


def test_shallow_copy_shares_the_result() -> None:
    state = Success(result=[1])
    clone = copy.copy(state)
    assert clone == state and clone is not state and clone._result is state._result


# -- load_result / load_cached_results ------------------------------------------------


def _write(store: dict[str, bytes], location: str, value: Any) -> DictResult:
    written = DictResult(store, location=location).write(value)
    assert isinstance(written, DictResult)
    return written


def test_load_result_reads_a_value_known_only_by_location() -> None:
    store: dict[str, bytes] = {}
    _write(store, "a.bin", {"v": 1})
    state = Success(result=DictResult(store, location="a.bin"))
    assert state.result is None
    assert state.load_result() is state
    assert state.result == {"v": 1}
    assert state._result.location == "a.bin"


def test_load_result_uses_the_given_reader() -> None:
    store: dict[str, bytes] = {}
    _write(store, "b.bin", 42)
    state = Success(result=Result(location="b.bin"))
    state.load_result(DictResult(store))
    assert state.result == 42 and isinstance(state._result, DictResult)


def test_load_result_leaves_known_values_and_missing_locations_alone() -> None:
    store: dict[str, bytes] = {}
    _write(store, "c.bin", "stored")
    with_value = Success(result=DictResult(store, value="mine", location="c.bin"))
    assert with_value.load_result().result == "mine"
    no_location = Success(result=DictResult(store))
    assert no_location.load_result().result is None
    assert Pending().load_result()._result is NoResult


def test_mapped_load_result_loads_children_and_rebuilds_the_list() -> None:
    store: dict[str, bytes] = {}
    _write(store, "0", "zero")
    _write(store, "1", "one")
    children = [Success(result=DictResult(store, location=loc)) for loc in ("0", "1")]
    mapped = Mapped(map_states=children)
    mapped.load_result()
    assert [c.result for c in children] == ["zero", "one"]
    assert mapped.result == ["zero", "one"]


def test_mapped_load_result_without_children_keeps_its_result() -> None:
    mapped = Mapped(result=[1, 2])
    assert mapped.load_result().result == [1, 2]


def test_load_cached_results_hydrates_inputs() -> None:
    store: dict[str, bytes] = {}
    _write(store, "x", 10)
    state = Retrying(cached_inputs={"x": DictResult(store, location="x"), "y": Result(value=5)})
    assert state.load_cached_results() is state
    assert state.cached_inputs["x"].value == 10
    assert state.cached_inputs["y"].value == 5


def test_load_cached_results_uses_the_given_readers_and_their_locations() -> None:
    store: dict[str, bytes] = {}
    _write(store, "elsewhere", "v")
    state = Retrying(cached_inputs={"x": Result()})
    state.load_cached_results({"x": DictResult(store, location="elsewhere")})
    assert state.cached_inputs["x"].value == "v"
    assert isinstance(state.cached_inputs["x"], DictResult)
