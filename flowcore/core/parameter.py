"""``Parameter``: a root task whose value comes from ``flow.run(parameters=...)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowcore.core.task import Task, no_default
from flowcore.engine import signals
from flowcore.engine.results import PrefectResult
from flowcore.engine.serializers import DateTimeSerializer
from flowcore.utilities import context as _context

if TYPE_CHECKING:
    from flowcore.core.flow import Flow

__all__ = ["DateTimeParameter", "Parameter", "no_default"]


class Parameter(Task):
    """A named flow input.

    Args:
        name: the parameter name (also its slug, so it is unique within a flow).
        default: the value when the run does not give one.
        required: whether a run must give it (default: True exactly when no default).
        tags: task tags.
    """

    _is_root_only = True
    _skip_case_attach = True

    def __init__(
        self,
        name: str,
        default: Any = no_default,
        required: bool | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        if required is None:
            required = default is no_default
        if default is no_default:
            default = None
        self.required = required
        self.default = default
        super().__init__(name=name, slug=name, tags=tags, result=PrefectResult(), checkpoint=True)

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"

    def __call__(self, flow: Flow | None = None) -> Parameter:
        """Add this parameter to ``flow`` (or the active flow) without copying it."""
        self.bind(flow=flow)
        return self

    def _run_hint(self) -> str:
        return f"Parameter({self.name!r})"

    def copy(self, name: str, **task_args: Any) -> Parameter:
        """A copy under a new ``name`` (the slug follows it)."""
        task_args.setdefault("slug", name)
        return super().copy(name=name, **task_args)  # type: ignore[return-value]

    def run(self) -> Any:
        parameters = _context.current().get("parameters") or {}
        if self.name in parameters:
            return parameters[self.name]
        if self.required:
            raise signals.FAIL(f'Parameter "{self.name}" was required but not provided.')
        return self.default


class DateTimeParameter(Parameter):
    """A parameter parsed into a pendulum DateTime (strings with ``pendulum.parse``)."""

    def __init__(
        self,
        name: str,
        default: Any = no_default,
        required: bool = True,
        tags: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name=name, default=default, required=required, tags=tags)
        self.result = PrefectResult(serializer=DateTimeSerializer())

    def run(self) -> Any:
        import pendulum

        value = super().run()
        if value is None:
            return None
        if isinstance(value, str):
            return pendulum.parse(value)
        return pendulum.instance(value)
