"""Control flow: ``case``, ``merge``, ``apply_map`` and a resource manager.

An order-fulfilment flow written as for Prefect 1 (only the imports say ``flowcore``):

* ``Workspace`` is a resource manager. Its setup creates a scratch directory, the tasks in
  the ``with`` block write shipping labels into it, and its cleanup deletes it, even though
  one order fails.
* ``apply_map(fulfil, orders, unmapped(workspace))`` builds a small sub-graph for each
  order: a ``case`` on the order's kind sends digital orders a download link and writes a
  shipping label for physical ones, and ``merge`` joins the two branches again.
* One physical order has no address: its label task fails, its merge does not run
  (``TriggerFailed``), and ``FilterTask`` drops it from the summary.
* A flow-level ``case`` on the ``express`` parameter notifies the courier only for
  express runs: the first run skips that branch, the second takes it.

Run it with ``python examples/control_flow.py``; it exits non-zero if a state or result is
not the expected one.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

from flowcore import Flow, Parameter, apply_map, case, resource_manager, task, unmapped
from flowcore.engine.state import Skipped
from flowcore.tasks.control_flow import FilterTask, merge

ORDERS = [
    {"id": "A-1", "kind": "digital", "item": "e-book"},
    {"id": "B-2", "kind": "physical", "item": "mug", "address": "1 Main St"},
    {"id": "C-3", "kind": "physical", "item": "poster"},  # no address: its label fails
    {"id": "D-4", "kind": "digital", "item": "album"},
]
CLEANED: list[str] = []


@resource_manager
class Workspace:
    """A scratch directory for the run's shipping labels."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def setup(self) -> str:
        return tempfile.mkdtemp(prefix=self.prefix)

    def cleanup(self, path: str) -> None:
        shutil.rmtree(path)
        CLEANED.append(path)


@task
def load_orders() -> list[dict[str, Any]]:
    return ORDERS


@task
def is_digital(order: dict[str, Any]) -> bool:
    return order["kind"] == "digital"


@task
def send_link(order: dict[str, Any]) -> str:
    return f"link: https://example.org/download/{order['id']}"


@task
def write_label(order: dict[str, Any], workspace: str) -> str:
    if "address" not in order:
        raise ValueError(f"order {order['id']} has no address")
    path = os.path.join(workspace, f"{order['id']}.txt")
    with open(path, "w") as fh:
        fh.write(f"{order['item']} -> {order['address']}\n")
    return f"label: {order['item']} -> {order['address']}"


@task
def count_labels(workspace: str, results: list[Any]) -> int:
    return len(os.listdir(workspace))


@task
def notify_courier(count: int) -> str:
    return f"courier notified about {count} parcel(s)"


def fulfil(order: Any, workspace: Any) -> Any:
    """The per-order sub-graph that ``apply_map`` maps over the orders."""
    digital = is_digital(order)
    with case(digital, True):
        link = send_link(order)
    with case(digital, False):
        label = write_label(order, workspace)
    return merge(link, label)


with Flow("fulfil-orders") as flow:
    express = Parameter("express", default=False)
    orders = load_orders()
    with Workspace("orders-") as workspace:
        outcomes = apply_map(fulfil, orders, unmapped(workspace))
        shipped = FilterTask(name="shipped")(outcomes)
        labels = count_labels(workspace, shipped)
    with case(express, True):
        courier = notify_courier(labels)


def main() -> int:
    problems: list[str] = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    state = flow.run()
    assert state is not None
    print(f"flow run: {type(state).__name__}: {state.message}")
    children = state.result[outcomes].map_states
    for order, child in zip(ORDERS, children):
        shown = child.result if child.is_successful() else type(child).__name__
        print(f"order {order['id']}  {order['kind']:<9} {shown}")
    print(f"shipped: {state.result[shipped].result}")
    print(f"labels written: {state.result[labels].result}")
    print(f"workspace cleaned up: {len(CLEANED) == 1 and not os.path.exists(CLEANED[0])}")
    print(f"courier: {type(state.result[courier]).__name__}")
    expect(type(state).__name__ == "Success", "the flow run succeeds")
    expect(
        [type(c).__name__ for c in children] == ["Success", "Success", "TriggerFailed", "Success"],
        "one order fails",
    )
    expect(state.result[labels].result == 1, "one label written")
    expect(isinstance(state.result[courier], Skipped), "no courier without express")

    state = flow.run(express=True)
    assert state is not None
    print(f"express run courier: {state.result[courier].result}")
    expect(state.result[courier].result == "courier notified about 1 parcel(s)", "express run")
    expect(len(CLEANED) == 2, "the workspace is cleaned up after each run")

    if problems:
        print("EXAMPLE FAILED:", "; ".join(problems))
        return 1
    print("EXAMPLE OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
