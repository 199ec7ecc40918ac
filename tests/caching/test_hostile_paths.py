"""Hostile paths through whole flow runs: FIFOs and directories where a cache record, a
cached value or a target belongs, locations that render to the root itself, NUL characters
and callable targets that return no str; and inputs a key ignores that cannot be hashed."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, task
from flowcore.cache_policies import INPUTS
from flowcore.caching import Cache, StorageCacheStore
from flowcore.engine import cache_validators
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached, Failed, Success
from tests.caching.conftest import doubling_flow, key_dir


def _warnings(logs: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in logs.records if r.levelname == "WARNING"]


def _is_regular(path: Path) -> bool:
    return stat.S_ISREG(os.lstat(path).st_mode)


# -- a FIFO (or a directory) where a file belongs: a warned miss, never a hang ----------------
# Opening a FIFO for reading waits for a writer: without the check these tests hang until
# their timeout.


def _cached_then_fifo(tmp_path: Path, pattern: str) -> tuple[Flow, list[int], Path]:
    """A flow run once with its cache in ``tmp_path``, then the file of its entry that
    matches ``pattern`` (``*.value``, ``*.json``) replaced by a FIFO."""
    calls: list[int] = []
    flow, _ = doubling_flow(calls)
    flow.run(x=1, cache_store=str(tmp_path))
    [path] = key_dir(tmp_path, "double").glob(pattern)
    path.unlink()
    os.mkfifo(path)
    return flow, calls, path


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_a_cached_value_is_a_warned_miss(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    flow, calls, value = _cached_then_fifo(tmp_path, "*.value")
    state = flow.run(x=1, cache_store=str(tmp_path))
    assert state.is_successful() and calls == [1, 1]
    [warning] = [w for w in _warnings(logs) if "cannot be read" in w]
    assert str(value) in warning and "FIFO" in warning
    assert _is_regular(value)  # the rerun replaced it
    assert flow.run(x=1, cache_store=str(tmp_path)).is_successful() and calls == [1, 1]


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_a_cache_record_is_a_miss_and_listing_finishes(tmp_path: Path) -> None:
    flow, calls, record = _cached_then_fifo(tmp_path, "*.json")
    [unread] = Cache(StorageCacheStore(LocalResult(dir=tmp_path))).entries()
    assert unread.passing and "FIFO" in (unread.problem or "")  # listed, not read
    state = flow.run(x=1, cache_store=str(tmp_path))
    assert state.is_successful() and calls == [1, 1]
    assert _is_regular(record)
    [entry] = Cache(StorageCacheStore(LocalResult(dir=tmp_path))).entries()
    assert entry.problem is None


def _target_flow(root: Path, target: Any, calls: list[str]) -> Flow:
    @task(result=LocalResult(dir=root), target=target, checkpoint=True, name="save")
    def save(p: str) -> str:
        calls.append(p)
        return "payload"

    with Flow("targets") as flow:
        save(Parameter("p"))
    return flow


def _state_of(flow: Flow, **parameters: Any) -> Any:
    state = flow.run(context={"checkpointing": True}, **parameters)
    return next(s for t, s in state.result.items() if t.name == "save")


@pytest.mark.timeout(30)
def test_a_fifo_at_a_target_is_a_warned_miss_and_is_rewritten(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    flow = _target_flow(tmp_path, "{p}.pkl", calls)
    os.mkfifo(tmp_path / "a.pkl")
    assert isinstance(_state_of(flow, p="a"), Success) and calls == ["a"]
    [warning] = [w for w in _warnings(logs) if "target" in w]
    assert "'a.pkl' exists but cannot be read" in warning and "FIFO" in warning
    assert _is_regular(tmp_path / "a.pkl")
    assert isinstance(_state_of(flow, p="a"), Cached) and calls == ["a"]


def test_a_directory_at_a_target_is_a_warned_miss_and_a_loud_checkpoint_failure(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    flow = _target_flow(tmp_path, "{p}.pkl", calls)
    (tmp_path / "a.pkl").mkdir()
    state = _state_of(flow, p="a")
    assert isinstance(state, Failed) and "could not checkpoint" in str(state.message)
    assert any("is a directory, not a regular file" in w for w in _warnings(logs))
    assert calls == ["a"] and os.listdir(tmp_path / "a.pkl") == []


# -- locations that render to the root itself ------------------------------------------------


@pytest.mark.parametrize("value", ["", "."])
def test_a_target_rendering_to_the_root_fails_and_writes_nothing(
    tmp_path: Path, value: str
) -> None:
    root = tmp_path / "root"
    calls: list[str] = []
    state = _state_of(_target_flow(root, "{p}", calls), p=value)
    assert isinstance(state, Failed) and calls == []
    message = str(state.message)
    assert "Task 'save': target:" in message and f"location {value!r}" in message
    assert f"renders to the root {str(root)!r} itself" in message
    assert "must name a file inside it" in message
    assert sorted(os.listdir(tmp_path)) == ["root"] and os.listdir(root) == []


# -- NUL characters and callable targets that return no str -----------------------------------


def test_a_nul_character_in_a_target_fails_the_task_with_a_clear_error(tmp_path: Path) -> None:
    calls: list[str] = []
    state = _state_of(_target_flow(tmp_path, "{p}.pkl", calls), p="x\x00y")
    assert isinstance(state, Failed) and calls == []
    message = str(state.message)
    assert "Task 'save': target:" in message and "(from template '{p}.pkl')" in message
    assert "contains a NUL character" in message and "embedded null byte" not in message
    assert os.listdir(tmp_path) == []


def test_a_nul_character_in_a_cache_key_fn_key_is_a_warned_uncached_run(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    @task(cache_key_fn=lambda context, inputs: "a\x00b", name="keyed")
    def keyed() -> int:
        calls.append(1)
        return 1

    with Flow("nul-key") as flow:
        keyed()
    for _ in range(2):
        assert flow.run(cache_store=str(tmp_path)).is_successful()
    assert calls == [1, 1] and os.listdir(tmp_path) == []
    warnings = [w for w in _warnings(logs) if "NUL character" in w]
    assert len(warnings) == 2 and warnings[0].startswith("Task 'keyed': ")


@pytest.mark.parametrize("returned", [5, None])
def test_a_callable_target_must_return_a_str(tmp_path: Path, returned: Any) -> None:
    calls: list[str] = []
    target: Callable[..., Any] = lambda **kwargs: returned  # noqa: E731
    state = _state_of(_target_flow(tmp_path, target, calls), p="a")
    assert isinstance(state, Failed) and calls == []
    message = str(state.message)
    assert "TypeError" in message and "Task 'save': the target callable" in message
    assert f"returned {returned!r} (of type {type(returned).__name__})" in message
    assert "it must return a str" in message and "attribute 'replace'" not in message


# -- inputs the key ignores need no digest -----------------------------------------------------


@pytest.mark.parametrize("spelling", ["INPUTS - 'conn'", "cache_key_fn"])
def test_an_unhashable_input_the_key_ignores_does_not_stop_caching(
    spelling: str, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    caching: dict[str, Any] = (
        {"cache_key_fn": lambda context, inputs: f"k-{inputs['x']}"}
        if spelling == "cache_key_fn"
        else {"cache_policy": INPUTS - "conn"}
    )

    @task(name="query", **caching)
    def query(x: int, conn: Any) -> int:
        calls.append(x)
        return x

    with Flow("ignored") as flow:
        query(Parameter("x"), threading.Lock())
    for x in (1, 1, 2):
        assert flow.run(x=x, cache_store=str(tmp_path)).is_successful()
    assert calls == [1, 2]
    assert not [w for w in _warnings(logs) if "conn" in w]
    records = [json.loads(p.read_bytes()) for p in tmp_path.rglob("*.json")]
    assert len(records) == 2
    assert {r["inputs"]["conn"] for r in records} == {"undigested:_thread.lock"}


def test_an_unhashable_input_the_key_uses_still_runs_uncached_with_a_warning(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS - "other", name="query")
    def query(conn: Any) -> int:
        calls.append(1)
        return 1

    with Flow("used") as flow:
        query(threading.Lock())
    for _ in range(2):
        flow.run(cache_store=str(tmp_path))
    assert calls == [1, 1]
    assert len([w for w in _warnings(logs) if "input 'conn'" in w]) == 2


def test_the_prefect_1_spelling_still_needs_every_input_hashed(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    """``all_inputs`` compares every input's digest, so none may be left out."""
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def query(x: int, conn: Any) -> int:
        calls.append(x)
        return x

    with Flow("prefect1") as flow:
        query(1, threading.Lock())
    for _ in range(2):
        flow.run(cache_store=str(tmp_path))
    assert calls == [1, 1]
    assert len([w for w in _warnings(logs) if "input 'conn'" in w]) == 2
