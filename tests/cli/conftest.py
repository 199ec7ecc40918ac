"""Running the installed ``flowcore`` console script, and cache stores filled by real flow runs.

``flowcore`` runs the console script from this interpreter's ``bin`` directory (``pip
install -e .`` puts it there) in a subprocess with the environment of the test process
(so the S3 and GCS fixtures' ``AWS_*`` and ``STORAGE_EMULATOR_HOST`` reach it), a home
directory of its own and no user config. ``flowcore.start`` launches several read-only
commands at once, to keep the suite quick.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flowcore import Flow, Parameter, cache_policies, task
from flowcore.caching import StorageCacheStore, store_from_spec
from flowcore.engine import cache_validators

SCRIPT = shutil.which("flowcore", path=str(Path(sys.executable).parent))


class Flowcore:
    """``flowcore(*args)`` runs the console script and returns the finished process."""

    def __init__(self, home: Path) -> None:
        if SCRIPT is None:
            pytest.fail(
                f"no flowcore console script beside {sys.executable}: pip install -e '.[test]'"
            )
        self.command = [SCRIPT]
        self.home = home

    def environment(self, **extra: str) -> dict[str, str]:
        """The test process's environment as it is now (the server fixtures set theirs)."""
        env = {key: value for key, value in os.environ.items() if key != "FLOWCORE__CACHING__STORE"}
        env["FLOWCORE__HOME_DIR"] = str(self.home)
        env["FLOWCORE__USER_CONFIG_PATH"] = str(self.home / "no-config.toml")
        # google-api-core's notice on Python 3.10 (as pyproject.toml's filterwarnings):
        # the tests read the commands' stderr line by line
        env["PYTHONWARNINGS"] = "ignore:You are using a non-supported Python version:FutureWarning"
        return {**env, **extra}

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.start(args, **env).finish()

    def start(self, args: Sequence[str], **env: str) -> Running:
        process = subprocess.Popen(
            [*self.command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, env=self.environment(**env),
        )  # fmt: skip
        return Running(process, args)

    def all(self, *commands: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run ``commands`` at the same time; their results in order."""
        return [running.finish() for running in [self.start(c) for c in commands]]


class Running:
    def __init__(self, process: subprocess.Popen[str], args: Sequence[str]) -> None:
        self.process, self.args = process, list(args)

    def finish(self) -> subprocess.CompletedProcess[str]:
        out, err = self.process.communicate(timeout=60)
        return subprocess.CompletedProcess(self.args, self.process.returncode, out, err)


@pytest.fixture
def flowcore(tmp_path: Path) -> Flowcore:
    return Flowcore(tmp_path / "home")


# -- stores filled by real flow runs ---------------------------------------------------------


@task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
def load(n: int) -> bytes:
    """Prefect 1 spelling: key "load", one record per input; a value of about n KB."""
    return b"x" * (n * 1000)


@task(cache_policy=cache_policies.INPUTS)
def total(data: bytes) -> int:
    """Policy spelling: a 32-hex key per input."""
    return len(data)


RUNS = (("etl", 1), ("etl", 2), ("report", 3))


def fill(store: str) -> None:
    """Three flow runs into ``store``, oldest first: etl (n=1), etl (n=2), report (n=3);
    each leaves one ``load`` entry (key "load", about n KB) and one ``total`` entry."""
    for name, n in RUNS:
        with Flow(name) as flow:
            total(load(Parameter("n")))
        state = flow.run(n=n, cache_store=store)
        assert state is not None and state.is_successful(), state


@pytest.fixture(params=["local", "s3", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A filled store: a directory, s3://BUCKET/caches (moto) or gs://BUCKET/caches."""
    kind = request.param
    if kind == "local":
        spec = str(tmp_path / "store")
    else:
        bucket = request.getfixturevalue(f"{kind}_bucket")
        spec = f"{'s3' if kind == 's3' else 'gs'}://{bucket}/caches"
    fill(spec)
    return spec


def backdate(spec: str, flow_run_id: str, days: float, expired: bool = False) -> int:
    """Edit the "created" field of the records a flow run wrote, ``days`` earlier (and,
    with ``expired``, their "expires" to an hour after that); return how many."""
    store = store_from_spec(spec)
    assert isinstance(store, StorageCacheStore)
    changed = 0
    for location in store.records.list(store.prefix):
        if not location.endswith(".json"):
            continue
        document = json.loads(store.records.read_bytes_at(location))
        if document["flow_run_id"] != flow_run_id:
            continue
        created = datetime.fromisoformat(document["created"]) - timedelta(days=days)
        document["created"] = created.isoformat()
        if expired and document["expires"] is not None:
            document["expires"] = (created + timedelta(hours=1)).isoformat()
        store.records.write_bytes_at(location, json.dumps(document).encode())
        changed += 1
    return changed


@pytest.fixture(params=["local", "s3", "gcs"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a directory, s3://BUCKET/caches (moto) or gs://BUCKET/caches
    (fake-gcs-server)."""
    if request.param == "local":
        (tmp_path / "store").mkdir()
        return str(tmp_path / "store")
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}/caches"
    return f"gs://{request.getfixturevalue('gcs_bucket')}/caches"


NIGHTLY = """
import sys
from datetime import timedelta

from flowcore import Flow, Parameter, task
from flowcore.cache_policies import INPUTS, TASK_SOURCE
from flowcore.engine import cache_validators
from flowcore.engine.results import LocalResult

SCALE = 2


@task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_parameters)
def fetch(day):
    return [len(day), 2 * len(day)]


@task(cache_policy=INPUTS + TASK_SOURCE)
def clean(rows):
    return [row * SCALE for row in rows]


@task
def summary(rows):
    return sum(rows)


@task(cache_policy=INPUTS)
def publish(total):
    return total


@task(target="export-{day}.txt", result=LocalResult(dir=RESULTS), checkpoint=True)
def export(day):
    return day


with Flow("nightly") as flow:
    day = Parameter("day", default="2026-12-05")
    publish(summary(clean(fetch(day))))
    export(day)

if __name__ == "__main__":  # python nightly.py STORE [DAY]
    state = flow.run(cache_store=sys.argv[1], day=sys.argv[2], context={"checkpointing": True})
    assert state.is_successful(), state
"""


def write_nightly(directory: Path, scale: int = 2) -> Path:
    """The flow file ``nightly.py`` (module constant ``SCALE``; targets under ``results/``)."""
    path = directory / "nightly.py"
    source = NIGHTLY.replace("SCALE = 2", f"SCALE = {scale}").replace(
        "RESULTS", repr(str(directory / "results"))
    )
    path.write_text(source)
    return path


def run_script(flowcore: Flowcore, path: Path, *args: str) -> None:
    """``python FILE ARGS``, as a user runs a flow file, with the test's environment."""
    done = subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, env=flowcore.environment(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
