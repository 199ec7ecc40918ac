"""``FunctionTask``: a task whose ``run`` is a plain function (what ``@task`` builds)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flowcore.core.task import Task, _infer_nout
from flowcore.core.task_arguments import validate_run_signature

__all__ = ["FunctionTask"]


class FunctionTask(Task):
    """``FunctionTask``: wrap ``fn`` as a task; ``fn`` becomes ``run`` (without ``self``).

    On an instance, ``__doc__`` is the function's docstring.

    Args:
        fn: the function to run.
        name: display name (default ``fn.__name__``).
        **kwargs: any ``Task`` argument.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"`fn` must be callable; FunctionTask got a {type(fn).__name__}")
        validate_run_signature(fn, f"Task {getattr(fn, '__name__', fn)!r}")
        self.run = fn  # type: ignore[method-assign]
        functools.update_wrapper(self, fn)
        if kwargs.get("nout") is None:
            kwargs["nout"] = _infer_nout(fn)
        super().__init__(name=name or getattr(fn, "__name__", type(self).__name__), **kwargs)

    def _run_hint(self) -> str:
        return self.name

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_run_sig", None)
        return state
