"""Optional dependencies, imported lazily from one table with install hints."""

from __future__ import annotations

import importlib
from types import ModuleType

from flowcore.exceptions import MissingExtraError

__all__ = ["import_optional"]

EXTRAS = {
    "boto3": "aws",
    "botocore": "aws",
    "google.cloud.storage": "gcp",
    "google.api_core": "gcp",
    "redis": "redis",
    "graphviz": "viz",
}


def import_optional(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module, EXTRAS.get(module.split(".")[0], "all"))
        raise MissingExtraError(feature, module, extra) from exc
