"""Process-wide helpers: configuration, context, logging, collections, edges, tasks."""

from __future__ import annotations

from types import ModuleType

from flowcore.utilities.submodules import import_submodule


def __getattr__(name: str) -> ModuleType:
    """A submodule (``flowcore.utilities.<name>``), imported on first use."""
    return import_submodule(__name__, name)
