"""Built-in tasks (``tasks.core``) and control flow (``tasks.control_flow``)."""

from __future__ import annotations

from types import ModuleType

from flowcore.utilities.submodules import import_submodule


def __getattr__(name: str) -> ModuleType:
    """A submodule (``flowcore.tasks.<name>``), imported on first use."""
    return import_submodule(__name__, name)
