"""flowcore: a fast workflow engine with Prefect 1's API.

Change ``prefect`` to ``flowcore`` in a Prefect 1 flow's imports and it runs here::

    from flowcore import Flow, Parameter, task

    @task
    def add(x, y):
        return x + y

    with Flow("example") as flow:
        n = Parameter("n", default=1)
        total = add(n, 2)

    state = flow.run()
    assert state.result[total].result == 3

The names below are Prefect 1's, and ``from flowcore import X`` gives each of them; they are
imported on first use (PEP 562), so ``import flowcore`` itself is quick and a command such as
``flowcore runs ls`` does not load the engine, Dask or pendulum.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowcore.configuration import config
from flowcore.utilities import logging as _logging  # noqa: F401  (configures the "flowcore" logger)
from flowcore.utilities.context import context

if TYPE_CHECKING:
    from flowcore import engine, executors, schedules, triggers
    from flowcore.core import Flow, Parameter, Task
    from flowcore.tasks.control_flow import case  # type: ignore[no-redef]
    from flowcore.tasks.core.resource_manager import resource_manager
    from flowcore.utilities.edges import flatten, mapped, unmapped
    from flowcore.utilities.tasks import apply_map, tags, task

__version__ = "0.2.0.dev0"

__all__ = [
    "engine",
    "executors",
    "schedules",
    "triggers",
    "Flow",
    "Parameter",
    "Task",
    "apply_map",
    "case",
    "config",
    "context",
    "flatten",
    "mapped",
    "resource_manager",
    "tags",
    "task",
    "unmapped",
]

# name -> the module that defines it ("" : the name is a subpackage of flowcore)
_LAZY = {
    "engine": "", "executors": "", "schedules": "", "triggers": "",
    "Flow": "flowcore.core", "Parameter": "flowcore.core", "Task": "flowcore.core",
    "case": "flowcore.tasks.control_flow",
    "resource_manager": "flowcore.tasks.core.resource_manager",
    "flatten": "flowcore.utilities.edges", "mapped": "flowcore.utilities.edges",
    "unmapped": "flowcore.utilities.edges",
    "apply_map": "flowcore.utilities.tasks", "tags": "flowcore.utilities.tasks",
    "task": "flowcore.utilities.tasks",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """Import a name of ``__all__``, or a subpackage (``flowcore.tasks``, ...), on first use."""
    from flowcore.utilities.submodules import import_submodule

    module = _LAZY.get(name)
    value = (
        getattr(importlib.import_module(module), name)
        if module
        else import_submodule(__name__, name)
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
