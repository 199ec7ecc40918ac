"""Storage-backed Results (one small class per backend)."""

from flowcore.engine.results.constant_result import ConstantResult
from flowcore.engine.results.prefect_result import PrefectResult

__all__ = ["ConstantResult", "PrefectResult"]
