"""A Result backend whose extra is not installed fails where it is made, naming the extra.

Prefect 1.4.1 (verified with the packages blocked the same way) constructs ``S3Result`` and
``GCSResult`` without them and fails at the first write with a bare ModuleNotFoundError;
flowcore deliberately fails earlier (docs/migrating.md says so).

``sys.modules[name] = None`` is what Python's import system sees for an absent package
(``import`` raises ImportError, ``importlib.util.find_spec`` answers None).
"""

from __future__ import annotations

import sys

import pytest

from flowcore import Flow, task
from flowcore.engine.results import GCSResult, S3Result
from flowcore.exceptions import MissingExtraError
from flowcore.utilities._optional import extra_for, import_optional, require_optional


@pytest.mark.parametrize(
    "blocked, make, extra",
    [
        ("boto3", lambda: S3Result(bucket="b"), "aws"),
        ("botocore", lambda: S3Result(bucket="b"), "aws"),
        ("google.cloud.storage", lambda: GCSResult(bucket="b"), "gcp"),
        ("google.api_core", lambda: GCSResult(bucket="b"), "gcp"),
    ],
)
def test_construction_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, blocked: str, make: object, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(MissingExtraError, match=rf"pip install 'flowcore\[{extra}\]'") as info:
        make()  # type: ignore[operator]
    assert isinstance(info.value, ImportError)
    assert info.value.extra == extra


def test_the_error_comes_before_any_task_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingExtraError, match="S3Result"):

        @task(result=S3Result(bucket="b"), checkpoint=True)
        def work() -> int:
            ran.append(1)
            return 1

        with Flow("never") as flow:
            work()
        flow.run()
    assert ran == []


def test_every_module_of_a_package_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """GCSResult imports google.api_core.exceptions; that used to name flowcore[all]."""
    assert extra_for("google.api_core.exceptions") == "gcp"
    assert extra_for("google.cloud.storage.blob") == "gcp"
    assert extra_for("botocore.exceptions") == "aws"
    assert extra_for("not_an_extra") == "all"
    monkeypatch.setitem(sys.modules, "google.api_core.exceptions", None)
    with pytest.raises(MissingExtraError, match=r"flowcore\[gcp\]"):
        import_optional("google.api_core.exceptions", "GCSResult")


def test_installed_extras_pass() -> None:
    require_optional("S3Result", "boto3", "botocore")
    require_optional("GCSResult", "google.cloud.storage", "google.api_core")
    assert S3Result(bucket="b").bucket == "b"
    assert GCSResult(bucket="b").bucket == "b"
