"""Optional dependencies, imported lazily from one table with install hints.

``EXTRAS`` maps an importable name to the flowcore extra that installs it. A dotted name
not in the table falls back to its nearest listed parent (``google.api_core.exceptions``
-> ``google.api_core`` -> ``gcp``), so every module of a package names the same extra.

``require_optional`` checks that a package is installed without importing it (constructors
use it, so a missing extra fails where the object is made, before any task runs);
``import_optional`` imports it where it is used.

>>> extra_for("google.api_core.exceptions"), extra_for("botocore.exceptions")
('gcp', 'aws')
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from flowcore.exceptions import MissingExtraError

__all__ = ["EXTRAS", "extra_for", "import_optional", "require_optional"]

EXTRAS = {
    "boto3": "aws",
    "botocore": "aws",
    "google.cloud.storage": "gcp",
    "google.api_core": "gcp",
    "redis": "redis",
    "graphviz": "viz",
    "psycopg": "postgres",
    "starlette": "ui",
    "uvicorn": "ui",
    "jinja2": "ui",
}


def extra_for(module: str) -> str:
    """The extra that installs ``module`` (``"all"`` for a module no extra provides)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        extra = EXTRAS.get(".".join(parts[:end]))
        if extra is not None:
            return extra
    return "all"


def import_optional(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, module, extra_for(module)) from exc


def require_optional(feature: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` for the first of ``modules`` that is not installed,
    without importing any of them."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtraError(feature, module, extra_for(module))
