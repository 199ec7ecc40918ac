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
"""

from flowcore import engine, executors, schedules, triggers
from flowcore.configuration import config
from flowcore.core import Flow, Parameter, Task
from flowcore.tasks.control_flow import case
from flowcore.tasks.core.resource_manager import resource_manager
from flowcore.utilities.context import context
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
