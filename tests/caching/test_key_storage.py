"""A cache policy's ``key_storage`` keeps records in one store and values in another.

Garbage collection of the values' store, by hand or after a run, never takes those values
for orphans (it cannot see the records that name them); ``Cache`` over the records alone
lists their entries as usable and refuses to remove them, and ``Cache(records, values=)``
lists, removes and collects them with their values. Real directories and flow runs only.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, task
from flowcore.cache_policies import INPUTS
from flowcore.caching import StorageCacheStore
from flowcore.caching.cache import Cache
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached, Success
from flowcore.utilities.configuration import set_temporary_config
from tests.caching.conftest import key_dir
from tests.caching.test_cache_management import put


def keyed_flow(keys: Path, calls: list[int]) -> tuple[Flow, Any]:
    """A flow of one task, ``times_ten(x)`` under ``INPUTS`` with its records in ``keys``."""

    @task(cache_policy=INPUTS.configure(key_storage=str(keys)))
    def times_ten(x: int) -> int:
        calls.append(x)
        return x * 10

    with Flow("apart") as flow:
        out = times_ten(Parameter("x", default=1))
    return flow, out


def values_in(root: Path) -> list[Path]:
    return sorted(root.rglob("*.value"))


def age(paths: list[Path], hours: float) -> None:
    """Make ``paths`` ``hours`` old, as gc sees them (by their modification time)."""
    then = time.time() - hours * 3600
    for path in paths:
        os.utime(path, (then, then))


def test_gc_of_the_values_store_keeps_values_whose_records_are_kept_apart(
    tmp_path: Path,
) -> None:
    keys, values, calls = tmp_path / "keys", tmp_path / "values", []
    flow, out = keyed_flow(keys, calls)
    for x in (1, 2):
        flow.run(x=x, cache_store=str(values))
    age(values_in(values), hours=3)
    report = Cache(str(values)).gc()
    assert report.orphans == [] and report.entries == [] and len(values_in(values)) == 2
    state = flow.run(x=1, cache_store=str(values)).result[out]
    assert isinstance(state, Cached) and state.result == 10 and calls == [1, 2]


def test_a_value_in_a_directory_without_records_is_never_an_orphan(tmp_path: Path) -> None:
    # the values of key_storage records written before the .records-elsewhere mark
    value = key_dir(tmp_path, "k") / "5ab669cbceaf9e3aeb549db80050bcfd3dc1a4fe.value"
    value.parent.mkdir(parents=True)
    value.write_bytes(b"kept")
    age([value], hours=3)
    assert Cache(str(tmp_path)).gc().orphans == [] and value.exists()


def test_values_of_records_kept_apart_survive_gc_in_a_directory_with_records_beside(
    tmp_path: Path,
) -> None:
    values = LocalResult(dir=str(tmp_path / "values"))
    beside = StorageCacheStore(values)
    apart = StorageCacheStore(values, records=LocalResult(dir=str(tmp_path / "keys")))
    put(beside, "k", 1)
    put(apart, "k", 2)  # one key: one directory, a value of each store
    age(values_in(tmp_path / "values"), hours=3)
    assert Cache(beside).gc().orphans == []
    [candidate] = apart.get("k")
    assert apart.load(candidate).result == 2


def test_the_records_elsewhere_mark_is_written_once_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    real = LocalResult._write_bytes

    def counting(self: LocalResult, location: str, data: bytes) -> None:
        written.append(os.path.basename(location))
        real(self, location, data)

    monkeypatch.setattr(LocalResult, "_write_bytes", counting)
    values = LocalResult(dir=str(tmp_path / "values"))
    for x in "abc":  # a store per task run, as a flow run makes them
        put(StorageCacheStore(values, records=LocalResult(dir=str(tmp_path / "keys"))), "k", 1, x=x)
    put(StorageCacheStore(values, records=LocalResult(dir=str(tmp_path / "keys"))), "j", 1)
    assert written.count(".records-elsewhere") == 2  # one per key directory, not per record
    assert (key_dir(tmp_path / "values", "k") / ".records-elsewhere").exists()
    assert (key_dir(tmp_path / "values", "j") / ".records-elsewhere").exists()


def _two_runs_kept_apart(tmp_path: Path) -> tuple[Path, Path]:
    """Two runs of a task whose records go to ``keys`` and values to ``values``."""
    keys, values = tmp_path / "keys", tmp_path / "values"
    flow, _ = keyed_flow(keys, [])
    for x in (1, 2):
        flow.run(x=x, cache_store=str(values))
    return keys, values


def test_a_cache_of_the_records_alone_lists_them_as_usable_and_refuses_to_remove_them(
    tmp_path: Path,
) -> None:
    keys, values = _two_runs_kept_apart(tmp_path)
    alone = Cache(str(keys))
    entries = alone.entries()
    assert len(entries) == 2
    assert all(e.problem is None and e.size is None for e in entries)
    assert {e.elsewhere for e in entries} == {str(values)}
    assert alone.gc().entries == [] and len(alone.entries()) == 2
    with pytest.raises(ValueError, match=f"values={str(values)!r}.*--values {values}"):
        alone.delete(key=entries[0].key)
    assert len(alone.entries()) == 2 and len(values_in(values)) == 2


def test_a_cache_given_both_stores_removes_and_collects_values_with_their_records(
    tmp_path: Path,
) -> None:
    keys, values = _two_runs_kept_apart(tmp_path)
    both = Cache(str(keys), values=str(values))
    first, second = both.entries()
    assert first.size is not None and first.size > 0 and first.elsewhere is None
    assert [e.key for e in both.delete(key=first.key)] == [first.key]
    assert [p.name for p in values_in(values)] == [Path(second.record.value_location or "").name]
    time.sleep(0.01)
    report = both.gc(max_age=timedelta(0))
    assert [e.key for e in report.entries] == [second.key] and report.orphans == []
    assert both.entries() == [] and values_in(values) == []


def test_values_is_refused_for_a_memory_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="values= keeps values apart"):
        Cache("memory", values=str(tmp_path))


def test_automatic_gc_after_a_run_keeps_values_whose_records_are_kept_apart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home, calls = tmp_path / "home", []
    flow, out = keyed_flow(tmp_path / "keys", calls)
    settings = {"home_dir": str(home), "caching.gc.max_age": "30d"}
    with set_temporary_config(settings), caplog.at_level("INFO"):
        assert type(flow.run().result[out]) is Success
        age(values_in(home / "storage"), hours=2)
        (home / "storage" / ".gc" / "last").unlink()  # as if caching.gc.every had passed
        second = flow.run().result[out]
        assert (home / "storage" / ".gc" / "last").is_file()  # gc ran after the second run
        third = flow.run().result[out]
    assert isinstance(second, Cached) and isinstance(third, Cached) and third.result == 10
    assert calls == [1] and len(values_in(home / "storage")) == 1
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert not [r for r in caplog.records if "orphaned values" in r.getMessage()]
