"""``FilterTask``: keep the items of a list (usually a mapped task's results) that pass a
test. It runs whatever its upstreams did (trigger ``all_finished``, no skip propagation),
so it is the usual reduce step after a map whose children may fail or skip.

>>> FilterTask().run([1, None, ValueError("bad"), 2])
[1, 2]
>>> FilterTask(filter_func=lambda x: x % 2 == 0).run([1, 2, 3, 4])
[2, 4]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowcore.core.task import Task
from flowcore.exceptions import PrefectSignal
from flowcore.triggers import all_finished

__all__ = ["FilterTask"]


def _is_real_result(item: Any) -> bool:
    return item is not None and not isinstance(item, (Exception, PrefectSignal))


class FilterTask(Task):
    """Filter a list of results.

    Args:
        filter_func: ``fn(item) -> bool``, True to keep the item. The default drops None,
            exceptions (the results of failed children) and signals (the results of
            children that raised ``SKIP`` and the like).
        log_func: ``fn(kept_items) -> str``, logged at INFO after filtering.
        **kwargs: any ``Task`` argument (defaults: ``trigger=all_finished``,
            ``skip_on_upstream_skip=False``).
    """

    def __init__(
        self,
        filter_func: Callable[[Any], bool] | None = None,
        log_func: Callable[[list[Any]], str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("skip_on_upstream_skip", False)
        kwargs.setdefault("trigger", all_finished)
        self.filter_func = filter_func or _is_real_result
        self.log_func = log_func
        super().__init__(**kwargs)

    def run(self, task_results: list[Any]) -> list[Any]:
        kept = [item for item in task_results if self.filter_func(item)]
        if self.log_func is not None:
            self.logger.info(self.log_func(kept))
        return kept
