"""``Result``: a value plus the location where it is (or will be) stored."""

from flowcore.engine.result.base import NoResult, NoResultType, Result

__all__ = ["NoResult", "NoResultType", "Result"]
