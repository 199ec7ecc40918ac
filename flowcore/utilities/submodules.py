"""Submodules as attributes of their package, imported on first use.

``import prefect`` imported most of Prefect 1's modules as a side effect, so code such as
``prefect.engine.results.LocalResult(...)`` or
``prefect.utilities.configuration.set_temporary_config(...)`` works after that import
alone. flowcore imports little up front, so its packages (``flowcore`` itself too) give a
submodule on first attribute access instead (PEP 562 ``__getattr__``), through
:func:`import_submodule`.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["import_submodule"]


def import_submodule(package: str, name: str) -> ModuleType:
    """``package.name`` imported, for a package's ``__getattr__``; ``AttributeError`` (as
    for any missing attribute) when ``name`` is not one of its submodules."""
    if name.startswith("_") or importlib.util.find_spec(f"{package}.{name}") is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return importlib.import_module(f"{package}.{name}")
