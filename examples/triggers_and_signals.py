"""Triggers, signals and state handlers: choosing what runs when something goes wrong.

A nightly housekeeping flow, written as for Prefect 1 (only the imports say ``flowcore``):

* ``check_inbox`` finds nothing new, so ``process_messages`` raises ``SKIP``; the skip
  propagates to ``archive`` (``skip_on_upstream_skip`` is on by default).
* ``verify_backup`` raises ``FAIL``. ``publish_report`` keeps the default trigger
  (``all_successful``) and ends ``TriggerFailed``; ``alert`` has ``any_failed`` and runs;
  ``cleanup`` has ``always_run`` (and ``skip_on_upstream_skip=False``) and runs whatever
  happened upstream.
* ``compact`` uses ``LOOP`` to halve a size until it is small enough, reading
  ``context.task_loop_result`` on each iteration.
* An ``on_failure`` callback and a flow state handler record what happened.
* ``alert``, ``cleanup`` and ``compact`` are the reference tasks, so the flow run succeeds
  even though some tasks failed: the failure was handled.

Run it with ``python examples/triggers_and_signals.py``; it exits non-zero if any task ends
in a different state from the one expected here.
"""

from __future__ import annotations

import sys

import flowcore
from flowcore import Flow, task
from flowcore.engine import signals
from flowcore.engine.state import State
from flowcore.triggers import always_run, any_failed

FAILURES: list[str] = []
FLOW_STATES: list[str] = []


def remember_failure(task: flowcore.Task, state: State) -> None:
    """``on_failure`` callback: called with the task and its failed state."""
    FAILURES.append(f"{task.name}: {state.message}")


def track_flow(flow: Flow, old_state: State, new_state: State) -> None:
    """Flow state handler: returning None keeps ``new_state``."""
    FLOW_STATES.append(type(new_state).__name__)


@task
def check_inbox() -> list[str]:
    return []


@task
def process_messages(messages: list[str]) -> int:
    if not messages:
        raise signals.SKIP("no new messages")
    return len(messages)


@task
def archive(count: int) -> str:
    return f"archived {count} messages"


@task(on_failure=remember_failure)
def verify_backup() -> str:
    raise signals.FAIL("backup checksum mismatch")


@task(on_failure=remember_failure)
def publish_report(verified: str) -> str:
    return f"published ({verified})"


@task(trigger=any_failed)
def alert() -> str:
    return "paged the on-call engineer"


# always_run alone is not enough here: an upstream (archive) is Skipped, and a skipped
# upstream skips the task before its trigger is checked unless skip_on_upstream_skip=False.
@task(trigger=always_run, skip_on_upstream_skip=False)
def cleanup() -> str:
    return "temporary files removed"


@task
def compact(size: int, target: int) -> int:
    current = flowcore.context.get("task_loop_result", size)
    if current > target:
        raise signals.LOOP(message=f"size {current} is above {target}", result=current // 2)
    return current


with Flow("housekeeping", state_handlers=[track_flow]) as flow:
    messages = check_inbox()
    processed = process_messages(messages)
    archived = archive(processed)

    verified = verify_backup()
    report = publish_report(verified)
    paged = alert(upstream_tasks=[verified])
    cleaned = cleanup(upstream_tasks=[archived, report])

    compacted = compact(1000, target=100)

flow.set_reference_tasks([paged, cleaned, compacted])

# Calling a task inside the flow adds a copy of it: the keys are those copies.
EXPECTED = {
    messages: "Success",
    processed: "Skipped",
    archived: "Skipped",
    verified: "Failed",
    report: "TriggerFailed",
    paged: "Success",
    cleaned: "Success",
    compacted: "Success",
}


def main() -> int:
    state = flow.run()
    problems = []
    print(f"flow run: {type(state).__name__}: {state.message}")
    for t in flow.sorted_tasks():
        task_state = state.result[t]
        kind = type(task_state).__name__
        print(f"  {t.name:<17} {kind:<14} {task_state.message}")
        if kind != EXPECTED[t]:
            problems.append(f"{t.name} ended {kind}, expected {EXPECTED[t]}")
    print(f"compacted size: {state.result[compacted].result}")
    print(f"on_failure saw: {FAILURES}")
    print(f"flow states: {' -> '.join(FLOW_STATES)}")
    if not state.is_successful():
        problems.append("the flow run did not succeed")
    if state.result[compacted].result != 62:
        problems.append("compact did not loop down to 62")
    for problem in problems:
        print(f"UNEXPECTED: {problem}", file=sys.stderr)
    print("EXAMPLE OK" if not problems else "EXAMPLE FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
