"""Store factories shared by the store contract and the cache management tests: the memory
store, and StorageCacheStore over local disk, S3 (moto's server) and GCS (fake-gcs-server)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, task
from flowcore.caching import MemoryCacheStore, StorageCacheStore
from flowcore.engine import cache_validators
from flowcore.engine.results import GCSResult, LocalResult, S3Result


def _factory(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], Any]:
    """New store objects over one backing store (so a test can read what another wrote)."""
    if kind == "memory":
        caches: dict[str, Any] = {}
        return lambda: MemoryCacheStore(caches)
    if kind == "local":
        return lambda: StorageCacheStore(LocalResult(dir=tmp_path / "cache"))
    bucket = request.getfixturevalue(f"{kind}_bucket")
    if kind == "s3":
        return lambda: StorageCacheStore(S3Result(bucket=bucket), prefix="caches")
    return lambda: StorageCacheStore(GCSResult(bucket=bucket), prefix="caches")


@pytest.fixture(params=["memory", "local", "s3", "gcs"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    return _factory(request.param, tmp_path, request)


@pytest.fixture(params=["local", "s3", "gcs"])
def make_storage_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    """Storage stores only: their records know their creation time and keep expired ones."""
    return _factory(request.param, tmp_path, request)


def key_dir(root: Path, key: str) -> Path:
    """Where a StorageCacheStore over ``LocalResult(dir=root)`` keeps ``key``'s records and values."""
    return root / StorageCacheStore(LocalResult(dir=str(root))).directory(key)


def doubling_flow(calls: list[int]) -> tuple[Flow, Any]:
    """A flow with one task, ``double`` (Prefect 1 caching: key "double", ``all_inputs``),
    of a Parameter ``x``; each run of the task appends ``x`` to ``calls``."""

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs, name="double")
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    with Flow("etl") as flow:
        out = double(Parameter("x"))
    return flow, out
