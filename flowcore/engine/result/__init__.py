"""``Result``: a value plus the location where it is (or will be) stored."""

from flowcore.engine.result.base import (
    NoResult,
    NoResultType,
    Result,
    checkpointed_none,
    is_checkpointed_none,
)

__all__ = ["NoResult", "NoResultType", "Result", "checkpointed_none", "is_checkpointed_none"]
