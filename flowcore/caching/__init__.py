"""Cache stores and the per-task-run cache plan (see DESIGN.md "Caching").

Prefect 1 keeps output caches in process memory only (``flowcore.context.caches``); a
*cache store* keeps the same records in memory or, durably, in any Result backend, so a
later process can use them ("time travel" across processes).
"""

from flowcore.caching.plan import CachePlan
from flowcore.caching.stores import CacheStore, MemoryCacheStore, ResultCacheStore, store_from_spec

__all__ = ["CachePlan", "CacheStore", "MemoryCacheStore", "ResultCacheStore", "store_from_spec"]
