"""Which cache store a flow run and a cache-policy task use: from ``flow.run(cache_store=)``,
``Flow(cache_store=)`` or config ``caching.store`` (one setting for both spellings), a
policy's ``key_storage``, the task's storage Result, or ``<home_dir>/storage``."""

from __future__ import annotations

import os
import re
from typing import Any

from flowcore.caching.stores import CacheStore, MemoryCacheStore, StorageCacheStore
from flowcore.engine.result import Result

__all__ = ["default_storage", "policy_store", "run_stores", "store_from_spec"]

_DEFAULT_RESULTS: dict[str, Result] = {}


def _local_result(directory: str) -> Result:
    """One ``LocalResult`` per directory and process."""
    found = _DEFAULT_RESULTS.get(directory)
    if found is None:
        from flowcore.engine.results import LocalResult

        found = _DEFAULT_RESULTS[directory] = LocalResult(dir=directory)
    return found


def default_storage(config: Any = None) -> Result:
    """``LocalResult`` under ``<home_dir>/storage``, where cache policies keep values by
    default (``config``: the run's config, which travels to Dask workers)."""
    from flowcore import configuration

    config = config if config is not None else configuration.config
    return _local_result(os.path.join(os.path.expanduser(str(config["home_dir"])), "storage"))


def _has_storage(result: Result) -> bool:
    return type(result)._write_bytes is not Result._write_bytes


def policy_store(
    policy: Any, explicit: CacheStore | None, task_result: Result, config: Any = None
) -> CacheStore:
    """The store of a task cached by ``policy``: the run's store when one was chosen
    (``cache_store`` / ``caching.store``), else the task's storage Result, else
    ``<home_dir>/storage``; a policy's ``key_storage`` keeps the records apart."""
    key_storage = getattr(policy, "key_storage", None)
    if key_storage is None and explicit is not None:
        return explicit
    if isinstance(explicit, StorageCacheStore):
        values = explicit.result
    else:
        values = task_result if _has_storage(task_result) else default_storage(config)
    if key_storage is None:
        return StorageCacheStore(values)
    if isinstance(key_storage, (str, os.PathLike)):
        records = _local_result(os.path.abspath(os.path.expanduser(os.fspath(key_storage))))
    elif isinstance(key_storage, Result):
        records = key_storage
    else:
        raise TypeError(
            f"key_storage must be a directory or a Result, got {type(key_storage).__name__}"
        )
    return StorageCacheStore(values, records=records)


def run_stores(
    given: Any, flow_setting: Any, config: Any, caches: dict[str, Any]
) -> dict[str, CacheStore]:
    """A flow run's stores, from the first store setting given: ``flow.run(cache_store=)``
    (``given``), ``Flow(cache_store=)`` (``flow_setting``), config ``caching.store``. The
    one setting applies to both spellings (``cache_store`` and ``policy_store``); with none,
    Prefect 1's caching keeps ``context.caches`` (``caches``) and cache policies their
    default storage (no ``policy_store``)."""
    spec = given if given is not None else flow_setting
    if spec is None:
        spec = config.get_path("caching.store")
    memory = MemoryCacheStore.of(caches)
    if spec is None:
        return {"cache_store": memory}
    store = memory if spec == "memory" else store_from_spec(spec)
    return {"cache_store": store, "policy_store": store}


def store_from_spec(spec: Any) -> CacheStore:
    """A store from a config value: a CacheStore, ``"memory"``, a directory,
    ``"s3://bucket/prefix"`` or ``"gs://bucket/prefix"``."""
    if isinstance(spec, CacheStore):
        return spec
    if spec is None or spec == "" or spec == "memory":
        return MemoryCacheStore()
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(
            f"cache store must be a CacheStore or a string ('memory', a directory, "
            f"'s3://bucket/prefix', 'gs://bucket/prefix'), got {type(spec).__name__}"
        )
    scheme_like = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):/", spec)
    if scheme_like and not spec.startswith(("s3://", "gs://")):  # ("C:/" is a Windows path)
        raise ValueError(
            f"cache store {spec!r} looks like a URL, but flowcore knows 's3://bucket/prefix' "
            "and 'gs://bucket/prefix' (two slashes) only; for a local directory give a path"
        )
    for scheme in ("s3://", "gs://"):
        if spec.startswith(scheme):
            bucket, _, prefix = spec[len(scheme) :].partition("/")
            if not bucket:
                raise ValueError(f"cache store {spec!r} has no bucket name")
            if scheme == "s3://":
                from flowcore.engine.results import S3Result

                return StorageCacheStore(S3Result(bucket=bucket), prefix=prefix)
            from flowcore.engine.results import GCSResult

            return StorageCacheStore(GCSResult(bucket=bucket), prefix=prefix)
    from flowcore.engine.results import LocalResult

    return StorageCacheStore(LocalResult(dir=spec))
