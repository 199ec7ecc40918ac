"""The graph model: Task, Flow, Edge, Parameter."""

from flowcore.core.edge import Edge
from flowcore.core.flow import Flow
from flowcore.core.parameter import DateTimeParameter, Parameter
from flowcore.core.task import Task

__all__ = ["DateTimeParameter", "Edge", "Flow", "Parameter", "Task"]
