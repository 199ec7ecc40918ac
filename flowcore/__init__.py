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

from flowcore.configuration import config
from flowcore.utilities.context import context

import flowcore.triggers  # noqa: E402,I001
import flowcore.engine  # noqa: E402
import flowcore.executors  # noqa: E402
import flowcore.schedules  # noqa: E402,F401
from flowcore.core import Flow, Parameter, Task  # noqa: E402
from flowcore.tasks.control_flow import case  # noqa: E402
from flowcore.tasks.core.resource_manager import resource_manager  # noqa: E402
from flowcore.utilities.edges import flatten, mapped, unmapped  # noqa: E402
from flowcore.utilities.tasks import apply_map, tags, task  # noqa: E402

__version__ = "0.1.0"

__all__ = [
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
