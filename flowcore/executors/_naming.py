"""Names of task runs on Dask: the label in messages and the Dask key (as Prefect 1 makes it).

    label  "<task name>[<map index>]" or "<task name>" ("<task name>[<first>-<last>]" for
           a batch of mapped children)
    key    "<task name>-<map index>-<uuid4 hex>" or "<task name>-<uuid4 hex>"

Both come from the ``extra_context`` the FlowRunner passes to ``submit`` (``task_name``,
``task_index``); without a task name, the submitted function's name stands in.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["child_label", "fn_name", "task_key", "task_label"]


def task_label(extra_context: dict[str, Any] | None, default: str = "<task>") -> str:
    """``"name[index]"`` (mapped child) or ``"name"``."""
    extra = extra_context or {}
    name = extra.get("task_name") or default
    index = extra.get("task_index")
    return f"{name}[{index}]" if index is not None else str(name)


def child_label(label: str, index: int) -> str:
    """The label of mapped child ``index`` of the batch labelled ``label``
    (``"name[0-9]"`` -> ``"name[3]"``)."""
    name = label[: label.rindex("[")] if label.endswith("]") else label
    return f"{name}[{index}]"


def task_key(extra_context: dict[str, Any] | None, default: str) -> str:
    """A new Dask key naming the task (and map index): unique, so never shared by two runs."""
    extra = extra_context or {}
    name = extra.get("task_name") or default
    index = extra.get("task_index")
    suffix = uuid.uuid4().hex
    return f"{name}-{index}-{suffix}" if index is not None else f"{name}-{suffix}"


def fn_name(fn: Any) -> str:
    """The name of a submitted function (its type's name for callables without one)."""
    return getattr(fn, "__name__", None) or type(fn).__name__
