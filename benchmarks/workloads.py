"""The registry of workloads, in table order."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["WORKLOADS", "module_for"]

#: workload id -> module under ``benchmarks``
WORKLOADS = {
    "W1": "w1_chain",
    "W2": "w2_fanin",
    "W3": "w3_map",
    "W4": "w4_cache_hits",
    "W5": "w5_targets",
    "W6": "w6_dask",
    "W7": "w7_retry",
    "W8": "w8_run_store",
    "SCALE": "scale",
    "SCALE-DASK": "scale_dask",
    "SCALE-DASK-CHAIN": "scale_dask_chain",
}


def module_for(workload: str) -> ModuleType:
    """The module of ``workload`` (an id such as ``"W1"``)."""
    return importlib.import_module(f"benchmarks.{WORKLOADS[workload.upper()]}")
