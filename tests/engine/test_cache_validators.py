"""Cache validators on literal Cached states (every case checked against Prefect 1.4.1)."""

from __future__ import annotations

import datetime
from typing import Any

import pendulum
import pytest
from dask.base import tokenize as dask_tokenize

from flowcore.engine import cache_validators as cv
from flowcore.engine.result import Result
from flowcore.engine.state import Cached

PAST = pendulum.now("UTC").subtract(hours=1)
FUTURE = pendulum.now("UTC").add(hours=1)


def cached(**kwargs: Any) -> Cached:
    return Cached(result="value", **kwargs)


HASHED = cached(hashed_inputs={"x": dask_tokenize(1), "y": dask_tokenize("a")})
RAW = cached(cached_inputs={"x": Result(1), "y": Result("a")})
PARAMS = cached(cached_parameters={"a": 1, "b": 2})


def test_tokenize_is_dask_tokenize() -> None:
    assert cv.tokenize({"k": [1, 2]}) == dask_tokenize({"k": [1, 2]})


# -- never_use / duration_only --------------------------------------------------------


@pytest.mark.parametrize("expiration", [None, PAST, FUTURE])
def test_never_use_is_always_false(expiration: datetime.datetime | None) -> None:
    assert cv.never_use(cached(cached_result_expiration=expiration), {}, {}) is False


@pytest.mark.parametrize(("expiration", "valid"), [(None, True), (PAST, False), (FUTURE, True)])
def test_duration_only(expiration: datetime.datetime | None, valid: bool) -> None:
    assert cv.duration_only(cached(cached_result_expiration=expiration), {}, {}) is valid


def test_duration_only_accepts_a_plain_datetime_expiration() -> None:
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
    assert cv.duration_only(cached(cached_result_expiration=later), {}, {})


@pytest.mark.parametrize(
    "validator",
    [cv.all_inputs, cv.all_parameters, cv.partial_inputs_only(), cv.partial_parameters_only(),
     cv.partial_inputs_only(["x"]), cv.partial_parameters_only(["a"])],
)  # fmt: skip
def test_every_builtin_checks_expiration_first(validator: cv.Validator) -> None:
    expired = cached(
        cached_result_expiration=PAST,
        hashed_inputs={"x": dask_tokenize(1)},
        cached_parameters={"a": 1},
    )
    assert validator(expired, {"x": 1}, {"a": 1}) is False
    fresh = cached(
        cached_result_expiration=FUTURE,
        hashed_inputs={"x": dask_tokenize(1)},
        cached_parameters={"a": 1},
    )
    assert validator(fresh, {"x": 1}, {"a": 1}) is True


# -- all_inputs -----------------------------------------------------------------------


def test_all_inputs_with_hashed_inputs() -> None:
    assert cv.all_inputs(HASHED, {"x": 1, "y": "a"}, {})
    assert not cv.all_inputs(HASHED, {"x": 2, "y": "a"}, {})


def test_all_inputs_key_sets_must_match_exactly() -> None:
    assert not cv.all_inputs(HASHED, {"x": 1}, {})
    assert not cv.all_inputs(HASHED, {"x": 1, "y": "a", "z": 0}, {})
    assert not cv.all_inputs(RAW, {"x": 1}, {})


def test_all_inputs_falls_back_on_cached_input_values() -> None:
    assert cv.all_inputs(RAW, {"x": 1, "y": "a"}, {})
    assert not cv.all_inputs(RAW, {"x": 2, "y": "a"}, {})


def test_hashed_inputs_win_over_cached_inputs() -> None:
    both = cached(hashed_inputs={"x": dask_tokenize(1)}, cached_inputs={"x": Result(2)})
    assert cv.all_inputs(both, {"x": 1}, {})
    assert not cv.all_inputs(both, {"x": 2}, {})


def test_all_inputs_with_no_inputs_at_all() -> None:
    assert cv.all_inputs(cached(hashed_inputs={}), {}, {})
    assert cv.all_inputs(cached(), {}, {})
    assert not cv.all_inputs(cached(), {"x": 1}, {})


def test_all_inputs_compares_tokens_of_equal_values() -> None:
    token = cached(hashed_inputs={"data": dask_tokenize({"k": [1, 2, 3]})})
    assert cv.all_inputs(token, {"data": {"k": [1, 2, 3]}}, {})
    assert not cv.all_inputs(token, {"data": {"k": [1, 2]}}, {})


# -- all_parameters -------------------------------------------------------------------


def test_all_parameters_needs_the_full_dict() -> None:
    assert cv.all_parameters(PARAMS, {}, {"a": 1, "b": 2})
    assert not cv.all_parameters(PARAMS, {}, {"a": 1})
    assert not cv.all_parameters(PARAMS, {}, {"a": 1, "b": 3})
    assert not cv.all_parameters(PARAMS, {}, {"a": 1, "b": 2, "c": 3})


def test_all_parameters_with_none_cached() -> None:
    assert not cv.all_parameters(cached(), {}, {})
    assert cv.all_parameters(cached(cached_parameters={}), {}, {})


def test_all_parameters_ignores_inputs() -> None:
    assert cv.all_parameters(PARAMS, {"x": "anything"}, {"a": 1, "b": 2})


# -- partial_parameters_only ----------------------------------------------------------


def test_partial_parameters_only_without_validate_on_only_checks_expiration() -> None:
    assert cv.partial_parameters_only()(PARAMS, {}, {"z": 9})
    assert cv.partial_parameters_only(None)(PARAMS, {}, {})


def test_partial_parameters_only_compares_listed_keys() -> None:
    validator = cv.partial_parameters_only(["a"])
    assert validator(PARAMS, {}, {"a": 1, "b": 99})
    assert not validator(PARAMS, {}, {"a": 2, "b": 2})


def test_partial_parameters_only_missing_keys_must_match_too() -> None:
    assert cv.partial_parameters_only(["c"])(PARAMS, {}, {"a": 5})
    assert not cv.partial_parameters_only(["c"])(PARAMS, {}, {"c": 1})
    assert not cv.partial_parameters_only(["a", "b"])(PARAMS, {}, {"a": 1})
    assert cv.partial_parameters_only(["a"])(cached(), {}, {})
    assert not cv.partial_parameters_only(["a"])(cached(), {}, {"a": 1})


def test_partial_parameters_only_accepts_any_iterable() -> None:
    assert cv.partial_parameters_only(("a", "b"))(PARAMS, {}, {"a": 1, "b": 2, "c": 0})
    assert cv.partial_parameters_only({"a"})(PARAMS, {}, {"a": 1})


def test_partial_parameters_only_tolerates_none_parameters() -> None:
    assert cv.partial_parameters_only(["a"])(cached(), {}, None)  # type: ignore[arg-type]


# -- partial_inputs_only --------------------------------------------------------------


def test_partial_inputs_only_without_validate_on_only_checks_expiration() -> None:
    assert cv.partial_inputs_only()(HASHED, {"x": 5}, {})


def test_partial_inputs_only_with_hashed_inputs() -> None:
    assert cv.partial_inputs_only(["x"])(HASHED, {"x": 1, "y": "changed"}, {})
    assert not cv.partial_inputs_only(["x"])(HASHED, {"x": 2}, {})
    assert cv.partial_inputs_only(["q"])(HASHED, {"x": 2}, {})
    assert not cv.partial_inputs_only(["x", "y"])(HASHED, {"x": 1}, {})


def test_partial_inputs_only_with_cached_inputs() -> None:
    assert cv.partial_inputs_only(["x"])(RAW, {"x": 1, "y": "b"}, {})
    assert not cv.partial_inputs_only(["x"])(RAW, {"x": 3}, {})


def test_partial_inputs_only_tolerates_none_inputs() -> None:
    assert cv.partial_inputs_only(["x"])(cached(), None, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "zone",
    [
        pendulum.UTC,
        datetime.timezone.utc,
        pendulum.timezone("Europe/Paris"),
        datetime.timezone(datetime.timedelta(hours=-7)),
    ],
    ids=["pendulum-utc", "stdlib-utc", "paris", "fixed-offset"],
)
def test_unexpired_in_any_time_zone(zone: Any) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    minutes = datetime.timedelta(minutes=5)
    assert cv.unexpired(None)
    assert cv.unexpired((now + minutes).astimezone(zone))
    assert not cv.unexpired((now - minutes).astimezone(zone))
    assert not cv.unexpired(pendulum.instance(now - minutes / 300).in_timezone(zone))
