"""Demo: a small ETL flow with checkpoints on local disk, written as in Prefect 1.

Only the imports differ from Prefect 1 (``flowcore`` instead of ``prefect``). The flow:

    day (Parameter) -> extract -> parse.map -> to_usd.map -> summarize -> load
                                                   ^
                                           fetch_rates (unmapped)

* ``extract`` calls a (simulated) orders API that times out on the first attempt; the task
  retries 0.2 s later and then succeeds.
* ``parse`` and ``to_usd`` are mapped: one child task run per order line.
* ``summarize`` is the reduce step: it receives the list of all children's results.
* Checkpointing is on and the flow's result is a ``LocalResult``: every task's value is
  written under ``<dir>/<day>/``. ``extract`` and ``summarize`` have a ``target``, so once
  their file exists they are not run again: the second run is served from disk.

Run it with ``python examples/demo.py`` (or ``make demo``; not with ``flowcore run``: the
flow's result directory is chosen by ``main``): it uses a temporary directory,
runs the flow twice, prints every task's final state and the report, and exits non-zero if
a run did not succeed. ``python examples/demo.py DIR`` keeps the checkpoints in ``DIR``;
run it twice with the same ``DIR`` and the second process reads the targets too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import timedelta

import flowcore
from flowcore import Flow, Parameter, task, unmapped
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Mapped, State

# What the orders API would return: "day,order id,region,amount,currency".
ORDERS_API = """\
2024-03-01,A-1001,emea,120.00,EUR
2024-03-01,A-1002,amer,75.50,USD
2024-03-01,A-1003,apac,9800,JPY
2024-03-01,A-1004,emea,42.10,GBP
2024-03-01,A-1005,amer,310.00,USD
2024-03-02,A-1006,emea,18.00,EUR
"""


# Every state change of `extract`, per flow run, filled by a state handler.
HISTORY: list[str] = []


def record_state(task: flowcore.Task, old_state: State, new_state: State) -> None:
    HISTORY.append(type(new_state).__name__)


# The retry delay is short so the demo is quick; real flows wait seconds or minutes.
@task(
    max_retries=2,
    retry_delay=timedelta(milliseconds=200),
    target="{day}/{task_name}.pkl",
    state_handlers=[record_state],
)
def extract(day: str) -> list[str]:
    """Fetch the day's order lines; the first attempt fails like a flaky API would."""
    logger = flowcore.context.get("logger")
    attempt = flowcore.context.get("task_run_count")
    if attempt == 1:
        raise ConnectionError("orders API timed out (simulated, first attempt only)")
    lines = [line for line in ORDERS_API.splitlines() if line.startswith(day)]
    logger.info("attempt %s fetched %d order lines for %s", attempt, len(lines), day)
    return lines


@task
def fetch_rates() -> dict[str, float]:
    """Exchange rates to USD (a constant table standing in for a rates service)."""
    return {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}


@task
def parse(line: str) -> dict:
    _day, order_id, region, amount, currency = line.split(",")
    return {"id": order_id, "region": region, "amount": float(amount), "currency": currency}


@task
def to_usd(order: dict, rates: dict[str, float]) -> dict:
    amount = order["amount"] * rates[order["currency"]]
    return {**order, "usd": round(amount, 2)}


@task(target="{day}/{task_name}.pkl")
def summarize(orders: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for order in orders:
        region = order["region"]
        totals[region] = round(totals.get(region, 0.0) + order["usd"], 2)
    return dict(sorted(totals.items()))


@task
def load(totals: dict[str, float], day: str) -> str:
    lines = [f"Revenue report for {day} (USD)"]
    lines += [f"  {region:<6}{amount:>10.2f}" for region, amount in totals.items()]
    lines.append(f"  {'total':<6}{sum(totals.values()):>10.2f}")
    return "\n".join(lines)


with Flow("daily-revenue") as flow:
    day = Parameter("day", default="2024-03-01")
    lines = extract(day)
    rates = fetch_rates()
    orders = parse.map(lines)
    priced = to_usd.map(orders, rates=unmapped(rates))
    totals = summarize(priced)
    report = load(totals, day)


def describe(state: State) -> str:
    """One line per task state, e.g. ``Mapped (5 children: 5 Success)``."""
    name = type(state).__name__
    if isinstance(state, Mapped):
        kinds: dict[str, int] = {}
        for child in state.map_states:
            kinds[type(child).__name__] = kinds.get(type(child).__name__, 0) + 1
        counts = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        return f"{name} ({len(state.map_states)} children: {counts})"
    return f"{name}: {state.message}"


def print_run(title: str, state: State) -> None:
    print(f"\n== {title}: flow run {type(state).__name__}: {state.message}")
    for t in flow.sorted_tasks():
        task_state = state.result[t]
        print(f"   {t.name:<12} {describe(task_state)}")
    print(f"   extract went through: {' -> '.join(HISTORY)}")
    HISTORY.clear()


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="flowcore-demo-") as scratch:
        directory = argv[1] if len(argv) > 1 else scratch
        flow.result = LocalResult(dir=directory, location="{day}/{task_full_name}.pkl")
        first = flow.run(day="2024-03-01", context={"checkpointing": True})
        print_run("run 1", first)
        second = flow.run(day="2024-03-01", context={"checkpointing": True})
        print_run("run 2 (same day: extract and summarize are read from their targets)", second)
        files = sorted(os.listdir(os.path.join(directory, "2024-03-01")))
        print(
            f"\n{len(files)} checkpoint files in {directory}/2024-03-01: {', '.join(files[:4])}, ..."
        )

    ok = first.is_successful() and second.is_successful()
    if ok:
        print()
        print(second.result[report].result)
        print(f"\norders priced: {len(second.result[priced].result)}")
    print("\nDEMO OK" if ok else "\nDEMO FAILED", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
