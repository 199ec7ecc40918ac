"""Transactions: a group's cache records and targets are written only if all of it succeeds."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, task
from flowcore import cache_policies as cp
from flowcore.caching import ResultCacheStore
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached, Success
from flowcore.transactions import Transaction, transaction
from flowcore.utilities.configuration import set_temporary_config


@pytest.fixture(autouse=True)
def home(tmp_path: Path) -> Iterator[Path]:
    with set_temporary_config({"home_dir": str(tmp_path / "home")}):
        yield tmp_path / "home"


def seed_flow(executed: list[str], broken: dict[str, bool]) -> tuple[Flow, Any, Any]:
    @task(cache_policy=cp.INPUTS)
    def load_data() -> list[int]:
        executed.append("load_data")
        return [1, 2, 3]

    @task(cache_policy=cp.INPUTS)
    def process_data(data: list[int]) -> int:
        executed.append("process_data")
        if broken["process"]:
            raise RuntimeError("bug in process_data")
        return sum(data)

    with Flow("pipeline") as flow:
        with transaction() as group:
            data = load_data()
            processed = process_data(data)
    assert isinstance(group, Transaction) and group.tasks == [data, processed]
    return flow, data, processed


def test_the_seed_transaction_example(home: Path, logs: pytest.LogCaptureFixture) -> None:
    executed: list[str] = []
    broken = {"process": True}
    flow, data, processed = seed_flow(executed, broken)

    first = flow.run()
    assert first.is_failed() and executed == ["load_data", "process_data"]
    assert not (home / "storage").exists() or not os.listdir(home / "storage")
    assert any("rolled back 1 write(s)" in r.getMessage() for r in logs.records)

    broken["process"] = False
    second = flow.run()
    assert second.is_successful() and executed[2:] == ["load_data", "process_data"]
    assert any("committed 2 write(s)" in r.getMessage() for r in logs.records)

    third = flow.run()
    assert executed[4:] == []
    assert isinstance(third.result[data], Cached) and isinstance(third.result[processed], Cached)
    assert third.result[processed].result == 6


def test_tasks_outside_the_transaction_write_at_once(home: Path) -> None:
    executed: list[str] = []

    @task(cache_key_fn=lambda c, p: "outside")
    def outside() -> int:
        executed.append("outside")
        return 1

    @task(cache_key_fn=lambda c, p: "inside")
    def inside() -> int:
        executed.append("inside")
        raise RuntimeError("fails")

    with Flow("mixed") as flow:
        outside()
        with transaction():
            inside()
    flow.run()
    flow.run()
    assert executed == ["outside", "inside", "inside"]


def test_prefect1_spelling_and_targets_in_a_transaction(tmp_path: Path) -> None:
    executed: list[str] = []
    broken = {"second": True}
    store = ResultCacheStore(LocalResult(dir=tmp_path / "cache"))
    results = LocalResult(dir=tmp_path / "targets")

    @task(cache_for=timedelta(hours=1), result=results, target="first.pkl")
    def first() -> int:
        executed.append("first")
        return 1

    @task(cache_for=timedelta(hours=1))
    def second(x: int) -> int:
        executed.append("second")
        if broken["second"]:
            raise RuntimeError("not yet")
        return x + 1

    with Flow("mixed-spelling", cache_store=store) as flow:
        with transaction():
            second(first())
    flow.run(context={"checkpointing": True})
    assert not (tmp_path / "targets" / "first.pkl").exists()
    assert (
        not list((tmp_path / "cache").rglob("*.value")) if (tmp_path / "cache").exists() else True
    )
    broken["second"] = False
    flow.run(context={"checkpointing": True})
    assert (tmp_path / "targets" / "first.pkl").exists()
    state = flow.run(context={"checkpointing": True})
    assert executed == ["first", "second", "first", "second"]
    assert all(isinstance(s, (Cached, Success)) for s in state.result.values())


def test_transaction_outside_a_flow_is_an_error() -> None:
    with pytest.raises(ValueError, match="inside a `with Flow"):
        with transaction():
            pass


def _count_runs(path: str) -> int:
    with open(path, "a") as handle:
        handle.write("ran\n")
    return 1


def test_on_a_process_executor_a_group_writes_nothing_and_runs_again(tmp_path: Path) -> None:
    from flowcore.executors import LocalDaskExecutor

    counted = task(_count_runs, cache_key_fn=lambda c, p: "in-a-process-group")
    log = tmp_path / "runs.txt"
    with Flow("processes") as flow:
        with transaction():
            counted(str(log))
    for _ in range(2):
        state = flow.run(executor=LocalDaskExecutor("processes", num_workers=1))
        assert state.is_successful()
    assert log.read_text().split() == ["ran", "ran"]
    assert not list((tmp_path / "home").rglob("*.json")) if (tmp_path / "home").exists() else True


@pytest.mark.parametrize("batch", [None, 2])  # 2: children kept compact (ChildStates)
def test_a_failed_mapped_child_rolls_back_the_whole_group(
    tmp_path: Path, home: Path, logs: pytest.LogCaptureFixture, batch: int | None
) -> None:
    executed: list[Any] = []
    failing = {2}

    @task(cache_policy=cp.INPUTS, name="child")
    def child(x: int) -> int:
        executed.append(x)
        if x in failing:
            raise ValueError("child fails")
        return x

    @task(result=LocalResult(dir=tmp_path / "targets"), target="sibling.pkl")
    def sibling() -> int:
        executed.append("sibling")
        return 7

    with Flow("mapped-group") as flow:
        with transaction("grp"):
            child.map([1, 2, 3])
            sibling()
    assert flow.run(context={"checkpointing": True}, map_batch_size=batch).is_failed()
    assert not list(home.rglob("*.json")) if home.exists() else True
    assert not (tmp_path / "targets" / "sibling.pkl").exists()
    assert any("'grp' rolled back" in r.getMessage() for r in logs.records)

    failing.clear()
    assert flow.run(context={"checkpointing": True}, map_batch_size=batch).is_successful()
    assert executed == [1, 2, 3, "sibling", 1, 2, 3, "sibling"]
    assert (tmp_path / "targets" / "sibling.pkl").exists()


def test_a_skipped_mapped_child_counts_as_a_success_of_its_group(home: Path) -> None:
    from flowcore.engine.signals import SKIP

    executed: list[int] = []

    @task(cache_policy=cp.INPUTS, name="maybe")
    def maybe(x: int) -> int:
        executed.append(x)
        if x == 2:
            raise SKIP("nothing to do for 2")
        return x

    with Flow("skipping-group") as flow:
        with transaction():
            maybe.map([1, 2, 3])
    flow.run()
    flow.run()
    assert executed == [1, 2, 3, 2]


def test_a_task_without_storage_in_a_group_is_not_checkpointed_as_outside(
    logs: pytest.LogCaptureFixture,
) -> None:
    from flowcore.engine.results import PrefectResult

    @task(name="plain")
    def plain(x: int) -> int:
        return x

    @task(name="in_location", result=PrefectResult())
    def in_location(x: int) -> int:
        return x

    with Flow("no-storage") as flow:
        with transaction("g"):
            one = plain(1)
            two = plain.map([2, 3])
            three = in_location(4)
    state = flow.run(context={"checkpointing": True})
    assert state.is_successful()
    assert state.result[one]._result.location is None
    assert [c._result.location for c in state.result[two].map_states] == [None, None]
    assert state.result[three]._result.location == "4"
    assert not [r for r in logs.records if r.levelno >= logging.WARNING]
    assert not [r for r in logs.records if "Transaction 'g'" in r.getMessage()]
