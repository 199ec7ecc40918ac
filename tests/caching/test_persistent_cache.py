"""Time travel across processes: a flow run with a persistent cache store, then run again
in new processes. Cached tasks do not execute (proven by a side-effect log); changed
inputs or parameters re-run exactly the tasks their validators say."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.caching.conftest import key_dir

SCRIPT = textwrap.dedent("""
    import sys
    from datetime import timedelta
    from flowcore import Flow, Parameter, task
    from flowcore.engine import cache_validators

    LOG = sys.argv[1]

    def mark(name):
        with open(LOG, "a") as fh:
            fh.write(name + "\\n")

    HOUR = timedelta(hours=1)

    @task(cache_for=HOUR, cache_validator=cache_validators.all_inputs)
    def load(n):
        mark("load")
        return list(range(n))

    @task(cache_for=HOUR, cache_validator=cache_validators.partial_parameters_only(["mode"]))
    def configure():
        mark("configure")
        return "config"

    @task(cache_for=HOUR, cache_key="squares", cache_validator=cache_validators.all_inputs)
    def square(x):
        mark(f"square{x}")
        return x * x

    @task
    def total(xs, cfg):
        mark("total")
        return sum(xs)

    with Flow("time-travel") as flow:
        n = Parameter("n")
        mode = Parameter("mode")
        result = total(square.map(load(n)), configure(upstream_tasks=[mode]))

    state = flow.run(n=int(sys.argv[2]), mode=sys.argv[3])
    assert state.is_successful(), state
    print("RESULT", state.result[result].result)
""")


def _run(script: Path, log: Path, n: int, mode: str, env: dict[str, str]) -> list[str]:
    before = log.read_text().split() if log.exists() else []
    done = subprocess.run(
        [sys.executable, str(script), str(log), str(n), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"RESULT {sum(x * x for x in range(n))}" in done.stdout
    return log.read_text().split()[len(before) :]


@pytest.mark.parametrize("backend", ["local", "s3", "gcs"])
def test_cache_survives_the_process(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "local":
        spec = str(tmp_path / "cache-store")
    else:
        bucket = request.getfixturevalue(f"{backend}_bucket")
        spec = f"{'s3' if backend == 's3' else 'gs'}://{bucket}/flowcore-cache"
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    log = tmp_path / "executed.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "FLOWCORE__CACHING__STORE": spec}

    assert _run(script, log, 3, "a", env) == [
        "load",
        "square0",
        "square1",
        "square2",
        "configure",
        "total",
    ]
    assert _run(script, log, 3, "a", env) == ["total"]
    assert _run(script, log, 4, "a", env) == ["load", "square3", "total"]
    assert _run(script, log, 4, "b", env) == ["configure", "total"]
    assert _run(script, log, 3, "b", env) == ["total"]


def test_flow_level_cache_store_and_a_lost_value(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    from datetime import timedelta

    from flowcore import Flow, task

    calls: list[int] = []

    @task(cache_for=timedelta(hours=1))
    def value() -> int:
        calls.append(1)
        return 7

    store_dir = tmp_path / "store"
    with Flow("store", cache_store=str(store_dir)) as flow:
        out = value()
    flow.run()
    assert flow.run().result[out].result == 7 and calls == [1]
    for path in store_dir.rglob("*.value"):
        path.unlink()
    assert flow.run().result[out].result == 7 and calls == [1, 1]
    assert any(
        r.levelname == "WARNING" and "cannot be read" in r.getMessage() for r in logs.records
    )
    assert flow.run().result[out].result == 7 and calls == [1, 1]


def test_flow_run_cache_store_argument_wins(tmp_path: Path) -> None:
    from datetime import timedelta

    from flowcore import Flow, task
    from flowcore.caching import ResultCacheStore
    from flowcore.engine.results import LocalResult

    calls: list[int] = []

    @task(cache_for=timedelta(hours=1))
    def value() -> int:
        calls.append(1)
        return 3

    with Flow("arg", cache_store="memory") as flow:
        value()
    store = ResultCacheStore(LocalResult(dir=tmp_path / "s"))
    flow.run(cache_store=store)
    flow.run(cache_store=ResultCacheStore(LocalResult(dir=tmp_path / "s")))
    assert calls == [1]
    assert list((tmp_path / "s").rglob("*.json"))


def test_one_store_setting_applies_to_both_spellings(tmp_path: Path) -> None:
    from datetime import timedelta

    from flowcore import Flow, cache_policies, task
    from flowcore.utilities.configuration import set_temporary_config

    @task(cache_for=timedelta(hours=1), name="old_style")
    def old_style() -> int:
        return 1

    @task(cache_policy=cache_policies.INPUTS, name="new_style")
    def new_style() -> int:
        return 2

    with Flow("both") as flow:
        old_style()
        new_style()
    with set_temporary_config(
        {"home_dir": str(tmp_path / "home"), "caching.store": str(tmp_path / "store")}
    ):
        assert flow.run().is_successful()
    assert {p.parent.parent.parent.name for p in (tmp_path / "store").rglob("*.json")} == {"store"}
    assert len(list((tmp_path / "store").rglob("*.json"))) == 2
    assert not (tmp_path / "home" / "storage").exists()


def test_stores_written_by_flowcore_0_1_0_are_ignored_with_one_info_line(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    import pickle

    from flowcore import Flow, cache_policies, task
    from flowcore.caching.legacy import _LEGACY_SEEN
    from flowcore.utilities.configuration import set_temporary_config

    key = cache_policies.INPUTS.compute_key(cache_policies.KeyContext(None, None, None, {}), {})
    assert key is not None
    storage = tmp_path / "home" / "storage"
    (storage / "old-a1b2").mkdir(parents=True)
    (storage / "old-a1b2" / "records.pkl").write_bytes(pickle.dumps(["planted"]))
    (storage / key).write_bytes(pickle.dumps(1))  # a 0.1.0 policy value, file named by the key
    (storage / f"{key}.record").write_bytes(pickle.dumps("record"))
    _LEGACY_SEEN.discard(str(storage))

    calls: list[int] = []

    @task(cache_policy=cache_policies.INPUTS)
    def fresh() -> int:
        calls.append(1)
        return 2

    with Flow("legacy") as flow:
        out = fresh()
    with set_temporary_config({"home_dir": str(tmp_path / "home")}):
        first, second = flow.run(), flow.run()
    assert first.result[out].result == 2 and second.result[out].result == 2 and calls == [1]
    lines = [r for r in logs.records if "flowcore 0.1.0" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "INFO"
    assert key_dir(storage, key).is_dir() and not (storage / f"{key}.record").exists()
