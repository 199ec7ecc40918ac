"""One cache mechanism for both spellings (see DESIGN.md "Caching").

* :mod:`~flowcore.caching.plan`: ``CachePlan``, compiled once per task from ``cache_for`` /
  ``cache_validator`` / ``cache_key`` or ``cache_policy`` / ``cache_key_fn``, asked once
  (``lookup``) and told once (``record``) per task run;
* :mod:`~flowcore.caching.stores`: the store interface and its two backends,
  ``MemoryCacheStore`` (``flowcore.context.caches``, Prefect 1's behaviour) and
  ``StorageCacheStore`` over any storage Result (local disk, S3, GCS);
* :mod:`~flowcore.caching.records`: ``CacheRecord``, the one record type (JSON);
* :mod:`~flowcore.caching.cache`: ``Cache``, to list, show, delete and gc a store's entries;
* :mod:`~flowcore.caching.explain`: ``explain_flow``, would each task's next run hit, and why
  (``flowcore cache explain``), in the words of :mod:`~flowcore.caching.reasons`;
* :mod:`~flowcore.utilities.hashing`: the one hashing helper, with a registry of hashers.
"""

from flowcore.caching.cache import Cache, CacheEntry, GcReport
from flowcore.caching.choice import store_from_spec
from flowcore.caching.plan import CachePlan, CacheRun
from flowcore.caching.records import CacheRecord, CorruptRecord
from flowcore.caching.stores import (
    CacheStore,
    MemoryCacheStore,
    ResultCacheStore,
    StorageCacheStore,
)
from flowcore.utilities.hashing import UnhashableValue, hash_value, register_hasher

__all__ = [
    "Cache",
    "CacheEntry",
    "CachePlan",
    "CacheRecord",
    "CacheRun",
    "CacheStore",
    "CorruptRecord",
    "GcReport",
    "MemoryCacheStore",
    "ResultCacheStore",
    "StorageCacheStore",
    "UnhashableValue",
    "hash_value",
    "register_hasher",
    "store_from_spec",
]
