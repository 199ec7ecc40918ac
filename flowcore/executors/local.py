"""``LocalExecutor``: runs each submitted call at once, in the calling thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowcore.executors.base import Executor

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Serial and in the main thread (so ``SIGALRM`` timeouts work); the default."""

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        extra_context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        return fn(*args, **kwargs)

    def wait(self, futures: Any) -> Any:
        return futures

    def runs_in_turn(self) -> bool:
        return True
