"""Concurrent writers lose nothing: many processes and many threads writing records of one
key into one store directory (each record its own object, written atomically)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

from flowcore import Flow, task
from flowcore.caching import StorageCacheStore
from flowcore.engine.cache_validators import all_inputs
from flowcore.engine.results import LocalResult
from flowcore.executors import LocalDaskExecutor
from tests.caching.conftest import key_dir

WRITER = textwrap.dedent("""
    import sys
    from datetime import timedelta
    from flowcore import Flow, task
    from flowcore.engine.cache_validators import all_inputs

    store, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    @task(cache_for=timedelta(hours=1), cache_validator=all_inputs, name="shared")
    def double(x):
        return 2 * x

    with Flow("writers") as flow:
        double.map(list(range(first, first + count)))
    state = flow.run(cache_store=store)
    assert state.is_successful(), state
""")


def test_20_processes_x_200_records_lose_nothing(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    store = tmp_path / "store"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLOWCORE__HOME_DIR": str(tmp_path / "home"),
    }
    writers = [
        subprocess.Popen([sys.executable, str(script), str(store), str(i * 1000), "200"], env=env)
        for i in range(20)
    ]
    assert [w.wait(timeout=300) for w in writers] == [0] * 20
    records = list(key_dir(store, "shared").glob("*.json"))
    assert len(records) == 4000
    inputs = {json.loads(r.read_text())["inputs"]["x"] for r in records}
    assert len(inputs) == 4000
    assert not list(store.rglob("*.tmp"))


def test_a_threaded_map_keeps_every_record(tmp_path: Path) -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=all_inputs)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    with Flow("threads") as flow:
        out = double.map(list(range(100)))
    store = StorageCacheStore(LocalResult(dir=tmp_path / "store"))
    executor = LocalDaskExecutor("threads", num_workers=4)
    assert flow.run(cache_store=store, executor=executor).is_successful()
    assert len(list(store.entries())) == 100
    state = flow.run(cache_store=store, executor=LocalDaskExecutor("threads", num_workers=4))
    assert sorted(calls) == list(range(100))
    assert [s.result for s in state.result[out].map_states] == [2 * x for x in range(100)]


def test_a_threaded_map_on_the_memory_store_keeps_every_record() -> None:
    import flowcore

    @task(cache_for=timedelta(hours=1), cache_validator=all_inputs)
    def triple(x: int) -> int:
        return 3 * x

    with Flow("threads-memory") as flow:
        triple.map(list(range(100)))
    assert flow.run(executor=LocalDaskExecutor("threads", num_workers=4)).is_successful()
    assert len(flowcore.context.caches["triple"]) == 100
