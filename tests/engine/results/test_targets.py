"""Targets: a task whose target exists is Cached with the stored value, in this process or
any later one; on local disk, S3 and GCS."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pendulum
import pytest

from flowcore import Flow, Parameter, task
from flowcore.engine.result import Result
from flowcore.engine.results import GCSResult, LocalResult, S3Result
from flowcore.engine.state import Cached, Failed, Success
from flowcore.exceptions import ResultStorageError

CHECKPOINTING = {"checkpointing": True}


def _counted(calls: list[Any]) -> Any:
    @task
    def produce(x: int) -> int:
        calls.append(x)
        return x * 10

    return produce


def test_second_run_is_served_from_the_target(tmp_path: Path) -> None:
    calls: list[int] = []
    produce = _counted(calls)
    with Flow("targets") as flow:
        out = produce(
            4, task_args={"result": LocalResult(dir=tmp_path), "target": "{task_name}-{x}.pkl"}
        )
    first = flow.run(context=CHECKPOINTING)
    second = flow.run(context=CHECKPOINTING)
    assert calls == [4]
    assert isinstance(first.result[out], Success) and not isinstance(first.result[out], Cached)
    hit = second.result[out]
    assert isinstance(hit, Cached) and hit.result == 40
    assert hit.message == "Result found at task target produce-4.pkl"
    assert hit.cached_result_expiration is None and set(hit.hashed_inputs or {}) == {"x"}


def test_targets_are_not_written_without_checkpointing(tmp_path: Path) -> None:
    calls: list[int] = []
    produce = _counted(calls)
    with Flow("no-checkpoint") as flow:
        produce(1, task_args={"result": LocalResult(dir=tmp_path), "target": "t.pkl"})
    flow.run()
    flow.run()
    assert calls == [1, 1] and os.listdir(tmp_path) == []


def test_templates_by_date_parameter_and_map_index(tmp_path: Path) -> None:
    calls: list[int] = []
    produce = _counted(calls)
    template = "{date:%A}/{today}/{flow_name}/{p}/{task_name}-{map_index}.pkl"
    with Flow("templated") as flow:
        p = Parameter("p", default="alpha")
        out = produce.map(
            [1, 2],
            upstream_tasks=[p],
            task_args={"result": LocalResult(dir=tmp_path), "target": template},
        )
    context = {**CHECKPOINTING, "date": "2024-03-05T10:00:00+00:00"}
    state = flow.run(context=context)
    folder = tmp_path / "Tuesday" / "2024-03-05" / "templated" / "alpha"
    assert sorted(os.listdir(folder)) == ["produce-0.pkl", "produce-1.pkl"]
    again = flow.run(context=context)
    assert calls == [1, 2]
    assert [c.result for c in again.result[out].map_states] == [10, 20]
    assert all(isinstance(c, Cached) for c in again.result[out].map_states)
    assert state.result[out].result == [10, 20]
    flow.run(parameters={"p": "beta"}, context=context)
    assert calls == [1, 2, 1, 2]


def test_callable_target_output_is_not_formatted_twice(tmp_path: Path) -> None:
    calls: list[int] = []
    produce = _counted(calls)

    def location(**kwargs: Any) -> str:
        return f"{{literal-braces}}-{kwargs['x']}.pkl"

    with Flow("callable") as flow:
        out = produce(5, task_args={"result": LocalResult(dir=tmp_path), "target": location})
    flow.run(context=CHECKPOINTING)
    assert os.listdir(tmp_path) == ["{literal-braces}-5.pkl"]
    assert flow.run(context=CHECKPOINTING).result[out].result == 50
    assert calls == [5]


def test_unreadable_target_is_a_warning_and_the_task_reruns(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    produce = _counted(calls)
    with Flow("corrupt") as flow:
        out = produce(3, task_args={"result": LocalResult(dir=tmp_path), "target": "c.pkl"})
    (tmp_path / "c.pkl").write_bytes(b"\x80\x05truncated")
    state = flow.run(context=CHECKPOINTING)
    assert calls == [3] and state.result[out].result == 30
    warnings = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert any("'c.pkl' exists but cannot be read" in m for m in warnings)
    assert LocalResult(dir=tmp_path).read("c.pkl").value == 30
    assert isinstance(flow.run(context=CHECKPOINTING).result[out], Cached)


def test_a_target_without_a_storage_result_fails_clearly() -> None:
    with Flow("no-result") as flow:
        out = _counted([])(1, task_args={"target": "t.pkl"})
    state = flow.run(context=CHECKPOINTING)
    assert isinstance(state.result[out], Failed)
    assert "ResultNotImplementedError" in str(state.result[out].message)
    assert "LocalResult" in str(state.result[out].message)


def test_unknown_target_key_fails_naming_it(tmp_path: Path) -> None:
    with Flow("bad-key") as flow:
        out = _counted([])(
            1, task_args={"result": LocalResult(dir=tmp_path), "target": "{nope}.pkl"}
        )
    state = flow.run(context=CHECKPOINTING)
    assert state.result[out].is_failed()
    assert "unknown key 'nope'" in str(state.result[out].message)
    assert "task_name" in str(state.result[out].message)


def test_second_process_is_served_entirely_from_targets(tmp_path: Path) -> None:
    log = tmp_path / "executed.txt"
    script = tmp_path / "pipeline.py"
    script.write_text(
        textwrap.dedent(f"""
        from flowcore import Flow, Parameter, task
        from flowcore.engine.results import LocalResult

        def mark(name):
            with open({str(log)!r}, "a") as fh:
                fh.write(name + "\\n")

        store = LocalResult(dir={str(tmp_path / "store")!r})

        @task(result=store, target="{{task_name}}-{{n}}.pkl")
        def extract(n):
            mark("extract")
            return list(range(n))

        @task(result=store, target="{{task_name}}-{{map_index}}.pkl")
        def transform(x):
            mark("transform")
            return x * x

        @task(result=store, target="{{task_name}}.pkl")
        def load(xs):
            mark("load")
            return sum(xs)

        with Flow("etl") as flow:
            n = Parameter("n", default=4)
            total = load(transform.map(extract(n)))

        state = flow.run(context={{"checkpointing": True}})
        assert state.is_successful(), state
        print("TOTAL", state.result[total].result, type(state.result[total]).__name__)
    """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "TOTAL 14 Success" in first.stdout
    assert log.read_text().split() == ["extract"] + ["transform"] * 4 + ["load"]
    second = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert "TOTAL 14 Cached" in second.stdout
    assert log.read_text().split() == ["extract"] + ["transform"] * 4 + ["load"]


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_object_store_targets(backend: str, request: pytest.FixtureRequest) -> None:
    bucket = request.getfixturevalue(f"{backend}_bucket")
    result: Result = S3Result(bucket=bucket) if backend == "s3" else GCSResult(bucket=bucket)
    calls: list[int] = []
    produce = _counted(calls)
    with Flow("cloud") as flow:
        out = produce.map(
            [1, 2],
            task_args={"result": result, "target": "runs/{today}/{task_name}-{map_index}.pkl"},
        )
    flow.run(context=CHECKPOINTING)
    today = pendulum.now("UTC").strftime("%Y-%m-%d")
    assert result.exists(f"runs/{today}/produce-1.pkl")
    second = flow.run(context=CHECKPOINTING)
    assert calls == [1, 2]
    assert [type(c).__name__ for c in second.result[out].map_states] == ["Cached", "Cached"]
    assert second.result[out].result == [10, 20]


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_target_in_storage_that_cannot_be_asked_fails_the_task_unrun(
    backend: str, request: pytest.FixtureRequest, logs: pytest.LogCaptureFixture
) -> None:
    """A bucket that does not exist (or refused credentials): whether the target exists is
    not known, so the task fails with the storage's error, without running (it said the
    target "exists but cannot be read" and ran the task, whose checkpoint then failed);
    Prefect 1.4.1's ``exists`` raised too."""
    request.getfixturevalue(f"{backend}_server")
    missing = f"flowcore-missing-{uuid.uuid4().hex[:12]}"
    result: Result = S3Result(bucket=missing) if backend == "s3" else GCSResult(bucket=missing)
    calls: list[int] = []
    produce = _counted(calls)
    with Flow("cloud") as flow:
        out = produce(1, task_args={"result": result, "target": "t/{task_name}.pkl"})
    state = flow.run(context=CHECKPOINTING).result[out]
    assert isinstance(state, Failed) and isinstance(state.result, ResultStorageError)
    assert missing in str(state.result) and calls == []
    assert not [r for r in logs.records if "exists but cannot be read" in r.getMessage()]


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_missing_bucket_is_an_error_naming_it_not_a_missing_value(
    backend: str, request: pytest.FixtureRequest
) -> None:
    # (S3's HEAD and GCS's reads answer "not found" for a missing bucket as for a missing
    # object: exists() said False, and an S3 write said FileNotFoundError)
    request.getfixturevalue(f"{backend}_server")
    missing = f"flowcore-missing-{uuid.uuid4().hex[:12]}"
    result: Result = S3Result(bucket=missing) if backend == "s3" else GCSResult(bucket=missing)
    for attempt in (
        lambda: result.exists("a.pkl"),
        lambda: result.read_if_exists("a.pkl"),
        lambda: result.write(1, location="a.pkl"),
    ):
        with pytest.raises(ResultStorageError, match=f"no bucket '{missing}'|NoSuchBucket"):
            attempt()


def test_credentials_that_cannot_look_at_the_bucket_still_get_a_plain_miss() -> None:
    # the missing-bucket check asks for the bucket's metadata, which least-privilege roles
    # (GCS objectViewer/objectAdmin; S3 without ListBucket) may not: "forbidden" there
    # means "cannot tell", a miss as before, not a failed task. (No test server enforces
    # permissions, so the two storage clients are stood in for here.)
    from google.api_core.exceptions import Forbidden

    class Blob:
        def exists(self) -> bool:
            return False

    class Bucket:
        def blob(self, name: str) -> Blob:
            return Blob()

        def exists(self) -> bool:
            raise Forbidden("storage.buckets.get denied")

    gcs = GCSResult(bucket=f"flowcore-forbidden-{uuid.uuid4().hex[:8]}")
    gcs.__dict__["_gcs_bucket"] = Bucket()
    assert gcs.exists("out/1.pkl") is False

    from botocore.exceptions import ClientError

    class Client:
        def head_object(self, **kwargs: Any) -> None:
            raise ClientError({"Error": {"Code": "404"}}, "HeadObject")

        def head_bucket(self, **kwargs: Any) -> None:
            raise ClientError({"Error": {"Code": "403"}}, "HeadBucket")

    s3 = S3Result(bucket=f"flowcore-forbidden-{uuid.uuid4().hex[:8]}")
    s3.__dict__["_client"] = Client()
    assert s3.exists("out/1.pkl") is False


def test_object_store_target_in_a_new_process(s3_bucket: str, tmp_path: Path) -> None:
    script = tmp_path / "cloud.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        from flowcore import Flow, task
        from flowcore.engine.results import S3Result

        @task(result=S3Result(bucket={s3_bucket!r}), target="value.pkl")
        def value():
            print("EXECUTED")
            return 42

        with Flow("cloud") as flow:
            out = value()
        state = flow.run(context={{"checkpointing": True}})
        print(type(state.result[out]).__name__, state.result[out].result)
    """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = [
        subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        for _ in range(2)
    ]
    assert runs[0].returncode == 0 and runs[1].returncode == 0, runs[1].stderr[-2000:]
    assert "EXECUTED" in runs[0].stdout and "Success 42" in runs[0].stdout
    assert "EXECUTED" not in runs[1].stdout and "Cached 42" in runs[1].stdout


def _from_parameter(**kwargs: Any) -> str:
    return f"{kwargs['parameters']['p']}.pkl"


@pytest.mark.parametrize(
    "target, value",
    [
        ("{p}.pkl", "../../escaped"),
        ("{p}.pkl", "/tmp/flowcore-escaped"),
        ("{p}.pkl", "~/escaped"),
        ("out/{p}.pkl", "../../escaped"),
        (_from_parameter, "../../escaped"),
        (_from_parameter, "/tmp/flowcore-escaped"),
        (_from_parameter, "~/escaped"),
    ],
)
def test_a_target_from_a_parameter_cannot_leave_the_result_dir(
    tmp_path: Path, target: Any, value: str
) -> None:
    calls: list[int] = []
    produce = _counted(calls)
    with Flow("escape") as flow:
        p = Parameter("p")
        out = produce(
            1,
            upstream_tasks=[p],
            task_args={"result": LocalResult(dir=tmp_path / "r"), "target": target},
        )
    state = flow.run(parameters={"p": value}, context=CHECKPOINTING)
    assert state.result[out].is_failed() and "LocationEscapeError" in str(state.result[out].message)
    assert calls == [] and os.listdir(tmp_path) == ["r"] and os.listdir(tmp_path / "r") == []
    assert not os.path.exists("/tmp/flowcore-escaped.pkl")
