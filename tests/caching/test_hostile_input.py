"""Hostile and bad input through whole flow runs: locations that try to leave their root,
planted pickles, corrupt records, unhashable inputs and bad caching arguments."""

from __future__ import annotations

import json
import os
import pickle
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, task
from flowcore.cache_policies import FLOW_PARAMETERS, INPUTS, TASK_SOURCE
from flowcore.caching import StorageCacheStore
from flowcore.engine import cache_validators
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached, Failed, Success
from flowcore.utilities.configuration import set_temporary_config
from tests.caching.conftest import doubling_flow, key_dir


def snapshot(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


# -- locations that try to leave their root -------------------------------------------------


@pytest.mark.parametrize("value", ["../../y", "/tmp/flowcore-escape-{}/y", "~/flowcore-escape-y"])
def test_a_callable_target_cannot_write_outside_its_result_dir(tmp_path: Path, value: str) -> None:
    value = value.format(os.getpid())
    root = tmp_path / "sandbox" / "results"
    before = snapshot(tmp_path)

    @task(result=LocalResult(dir=root), target=lambda **kw: f"{kw['x']}.pkl", checkpoint=True)
    def write(x: str) -> str:
        return "payload"

    with Flow("escape") as flow:
        write(value)
    state = flow.run(context={"checkpointing": True})
    [task_state] = state.result.values()
    assert isinstance(task_state, Failed)
    assert "escapes" in str(task_state.message) or "outside" in str(task_state.message)
    assert snapshot(tmp_path) - before <= {"sandbox", "sandbox/results"}
    assert not Path(os.path.expanduser("~/flowcore-escape-y.pkl")).exists()
    assert not Path(f"/tmp/flowcore-escape-{os.getpid()}").exists()


def test_a_symlink_inside_the_result_dir_is_not_followed_out(tmp_path: Path) -> None:
    root, outside = tmp_path / "results", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)

    @task(result=LocalResult(dir=root), target="link/{x}.pkl", checkpoint=True)
    def write(x: str) -> str:
        return "payload"

    with Flow("symlink") as flow:
        write("a")
    state = flow.run(context={"checkpointing": True})
    assert isinstance(next(iter(state.result.values())), Failed)
    assert list(outside.iterdir()) == []


def test_a_cache_key_fn_cannot_escape_the_store(tmp_path: Path) -> None:
    store_dir = tmp_path / "box" / "store"
    before = snapshot(tmp_path)

    @task(cache_key_fn=lambda context, inputs: "t-x/../../../y")
    def work() -> int:
        return 1

    with Flow("key-escape") as flow:
        work()
    state = flow.run(cache_store=str(store_dir))
    [task_state] = state.result.values()
    assert isinstance(task_state, Failed)
    assert "t-x/../../../y" in str(task_state.message) and "work" in str(task_state.message)
    assert snapshot(tmp_path) - before <= {"box", "box/store"}


# -- corrupt and planted data ---------------------------------------------------------------


class Planted:
    """Unpickling this creates a marker file: proof that a planted pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


def test_a_corrupt_record_is_a_warned_miss_and_is_rewritten(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    flow, out = doubling_flow(calls)
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    flow.run(x=1, cache_store=store)
    [record] = key_dir(tmp_path, "double").glob("*.json")
    record.write_bytes(record.read_bytes()[:40])
    flow.run(x=1, cache_store=store)
    assert calls == [1, 1]
    assert any(r.levelname == "WARNING" and record.name in r.getMessage() for r in logs.records)
    state = flow.run(x=1, cache_store=store)
    assert calls == [1, 1] and isinstance(state.result[out], Cached)


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *owners, name = path.split(".")
    for owner in owners:
        document = document[owner]
    document[name] = value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("parameters", [1, 2]),
        ("parameters", "abc"),
        ("inputs", [1, 2]),
        ("inputs", 5),
        ("key_parts", {"INPUTS": 5}),
        ("record_id", ["x"]),
        ("message", {"a": 1}),
        ("value.location", 123),
        ("value.location", None),
        ("value.location", "a\u0000b"),
    ],
)
@pytest.mark.parametrize("spelling", ["cache_for", "policy"])
def test_a_record_with_fields_of_the_wrong_type_is_a_warned_miss_and_is_rewritten(
    tmp_path: Path, logs: pytest.LogCaptureFixture, field: str, value: Any, spelling: str
) -> None:
    calls: list[int] = []

    @(
        task(cache_policy=INPUTS)
        if spelling == "policy"
        else task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    )
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    with Flow("etl") as flow:
        out = double(Parameter("x"))
    flow.run(x=1, cache_store=str(tmp_path))
    [record] = tmp_path.glob("*/*/*.json")
    document = json.loads(record.read_text())
    _set(document, field, value)
    record.write_text(json.dumps(document))

    state = flow.run(x=1, cache_store=str(tmp_path))
    assert state.is_successful() and state.result[out].result == 2 and calls == [1, 1]
    assert any(r.levelname == "WARNING" and str(record) in r.getMessage() for r in logs.records)
    again = flow.run(x=1, cache_store=str(tmp_path))
    assert isinstance(again.result[out], Cached) and calls == [1, 1]  # rewritten: a hit


def test_a_record_file_linking_out_of_the_store_is_a_warned_miss(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    flow, out = doubling_flow(calls)
    store, outside = tmp_path / "store", tmp_path / "outside.json"
    flow.run(x=1, cache_store=str(store))
    [record] = key_dir(store, "double").glob("*.json")
    outside.write_bytes(record.read_bytes())
    record.unlink()
    record.symlink_to(outside)
    state = flow.run(x=1, cache_store=str(store))
    assert state.is_successful() and state.result[out].result == 2 and calls == [1, 1]
    assert any(
        r.levelname == "WARNING"
        and str(record) in r.getMessage()
        and "cannot be read" in r.getMessage()
        for r in logs.records
    )
    assert json.loads(outside.read_text())["key"] == "double"  # nothing written through it


@pytest.mark.parametrize(
    ("field", "value"), [("inputs", [1]), ("parameters", "s"), ("key_parts", {"INPUTS": 5})]
)
def test_a_damaged_latest_record_is_a_warned_plain_miss(
    tmp_path: Path, logs: pytest.LogCaptureFixture, field: str, value: Any
) -> None:
    @task(cache_policy=INPUTS + TASK_SOURCE + FLOW_PARAMETERS, name="w")
    def w(x: int) -> int:
        return x

    with Flow("l") as flow:
        out = w(Parameter("x"))
    flow.run(x=1, cache_store=str(tmp_path))
    [latest] = tmp_path.glob(".tasks/*.latest")
    document = json.loads(latest.read_text())
    document[field] = value
    latest.write_text(json.dumps(document))
    state = flow.run(x=2, cache_store=str(tmp_path))
    assert state.is_successful() and state.result[out].result == 2
    assert any(r.levelname == "WARNING" and latest.name in r.getMessage() for r in logs.records)
    assert json.loads(latest.read_text())["inputs"] != document["inputs"]  # replaced


def test_with_a_signing_key_planted_pickles_never_run(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    flow, out = doubling_flow(calls)
    marker = tmp_path / "pwned"
    store = StorageCacheStore(LocalResult(dir=tmp_path / "store"))
    with set_temporary_config({"results.signing_key": "k3y"}):
        flow.run(x=1, cache_store=store)
        [value] = key_dir(tmp_path / "store", "double").glob("*.value")
        value.write_bytes(pickle.dumps(Planted(str(marker))))
        state = flow.run(x=1, cache_store=store)
        assert calls == [1, 1] and isinstance(state.result[out], Cached)
        assert not marker.exists()
        # a planted record pointing at a planted value: refused, unsigned
        [record] = key_dir(tmp_path / "store", "double").glob("*.json")
        body = record.read_text().replace('"mac"', '"was_mac"')
        record.write_text(body)
        flow.run(x=1, cache_store=store)
        assert calls == [1, 1, 1] and not marker.exists()
    assert any(
        r.levelname == "WARNING" and "signature" in r.getMessage().lower() for r in logs.records
    )


def test_with_a_signing_key_a_planted_target_never_runs(tmp_path: Path) -> None:
    calls: list[int] = []
    marker = tmp_path / "pwned"
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "out.pkl").write_bytes(pickle.dumps(Planted(str(marker))))

    @task(result=LocalResult(dir=tmp_path / "results"), target="out.pkl", checkpoint=True)
    def produce() -> int:
        calls.append(1)
        return 7

    with Flow("target") as flow:
        produce()
    with set_temporary_config({"results.signing_key": "k3y"}):
        state = flow.run(context={"checkpointing": True})
        assert calls == [1] and not marker.exists()
        assert isinstance(next(iter(state.result.values())), Success)
        again = flow.run(context={"checkpointing": True})
        assert calls == [1] and next(iter(again.result.values())).result == 7


# -- unhashable inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["cache_for", "policy"])
def test_an_unhashable_input_runs_uncached_with_one_warning(
    spelling: str, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    from flowcore import cache_policies

    calls: list[int] = []
    kwargs: dict[str, Any] = (
        {"cache_for": timedelta(hours=1), "cache_validator": cache_validators.all_inputs}
        if spelling == "cache_for"
        else {"cache_policy": cache_policies.INPUTS}
    )

    @task(**kwargs)
    def guarded(lock: Any) -> int:
        calls.append(1)
        return 1

    with Flow("unhashable") as flow:
        guarded(threading.Lock())
    with set_temporary_config({"home_dir": str(tmp_path)}):
        for _ in range(3):
            flow.run()
    assert len(calls) == 3
    warnings = [r for r in logs.records if r.levelname == "WARNING" and "'lock'" in r.getMessage()]
    assert len(warnings) == 3  # one per run
    assert "lock" in warnings[0].getMessage() and "changed" not in warnings[0].getMessage()
    assert not [r for r in logs.records if "input 'lock' changed" in r.getMessage()]


# -- bad arguments fail at task creation ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (
            {"cache_for": timedelta(seconds=-5)},
            ValueError,
            ["cache_for=timedelta(seconds=-5)", "positive"],
        ),
        ({"cache_for": 60}, TypeError, ["cache_for=60", "timedelta(seconds=60)"]),
        (
            {"cache_for": timedelta(hours=1), "cache_validator": "all_inputs"},
            TypeError,
            ["cache_validator='all_inputs'", "cache_validators.all_inputs"],
        ),
        ({"cache_for": timedelta(hours=1), "cache_key": 3}, TypeError, ["cache_key=3", "str"]),
        ({"cache_policy": "INPUTS"}, TypeError, ["cache_policy='INPUTS'", "cache_policies"]),
        ({"cache_key_fn": "k"}, TypeError, ["cache_key_fn='k'", "callable"]),
        (
            {"cache_key_fn": lambda c, p: "k", "cache_expiration": timedelta(0)},
            ValueError,
            ["cache_expiration", "positive"],
        ),
        (
            {"cache_key_fn": lambda c, p: "k", "cache_expiration": 10},
            TypeError,
            ["cache_expiration=10", "timedelta"],
        ),
    ],
)
def test_bad_caching_arguments_fail_at_creation(
    kwargs: dict[str, Any], error: type, words: list[str]
) -> None:
    with pytest.raises(error) as raised:
        task(name="bad", **kwargs)(lambda x=1: x)
    message = str(raised.value)
    assert "'bad'" in message
    for word in words:
        assert word in message
