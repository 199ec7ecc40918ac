"""Storage-backed Results: one small class per backend over ``engine.result.Result``."""

from flowcore.engine.results.constant_result import ConstantResult
from flowcore.engine.results.gcs_result import GCSResult
from flowcore.engine.results.local_result import LocalResult
from flowcore.engine.results.prefect_result import PrefectResult
from flowcore.engine.results.s3_result import S3Result

__all__ = ["ConstantResult", "GCSResult", "LocalResult", "PrefectResult", "S3Result"]
