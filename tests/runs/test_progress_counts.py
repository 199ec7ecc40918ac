"""What the live progress display counts (``RunProgress.count`` and ``count_columns``),
without drawing it: a task run once, in its latest category; a mapped parent gives its
task's total."""

from __future__ import annotations

import random

import pytest

from flowcore.engine.state import Cached, Failed, Mapped, Retrying, Running, State, Success
from flowcore.runs.progress import RunProgress

STRUCTURE = {
    "tasks": [
        {"slug": "a-1", "name": "a", "mapped": True},
        {"slug": "b-1", "name": "b", "mapped": False},
    ]
}


def _counts(progress: RunProgress) -> dict[str, tuple[int, int, int, int | None]]:
    return {
        slug: (line.counts["done"], line.counts["cached"], line.counts["failed"], line.total)
        for slug, line in progress._lines.items()
    }


def _columns(progress: RunProgress, reports: list[tuple[str, int, State | None]]) -> None:
    progress.count_columns(
        [r[0] for r in reports], [r[1] for r in reports], [r[2] for r in reports]
    )


def test_a_batch_of_one_task_s_children_in_one_state_is_counted_once_each() -> None:
    progress = RunProgress(STRUCTURE)
    _columns(progress, [("a-1", -1, Mapped(map_states=[Success()] * 5))])
    _columns(progress, [("a-1", i, Success()) for i in range(3)])
    _columns(progress, [("a-1", i, Success()) for i in (3, 3, 4)])  # (a child twice)
    assert _counts(progress)["a-1"] == (5, 0, 0, 5)
    _columns(progress, [("a-1", i, Success()) for i in range(5)])  # all seen before
    assert _counts(progress)["a-1"] == (5, 0, 0, 5)


def test_a_child_retried_moves_to_its_latest_category() -> None:
    progress = RunProgress(STRUCTURE)
    _columns(progress, [("a-1", i, Failed()) for i in range(4)])
    assert _counts(progress)["a-1"] == (0, 0, 4, None)
    _columns(progress, [("a-1", i, Success()) for i in (1, 2)])  # (seen: the slow path)
    assert _counts(progress)["a-1"] == (2, 0, 2, None)


def test_running_states_and_unknown_tasks_count_nothing() -> None:
    progress = RunProgress(STRUCTURE)
    _columns(progress, [("a-1", i, None) for i in range(3)])  # (a recorder's Running)
    _columns(progress, [("a-1", i, Running()) for i in range(3)])
    _columns(progress, [("zz-9", i, Success()) for i in range(3)])
    _columns(progress, [])
    assert _counts(progress) == {"a-1": (0, 0, 0, None), "b-1": (0, 0, 0, 1)}


@pytest.mark.parametrize("seed", range(20))
def test_batches_in_columns_count_as_one_report_at_a_time(seed: int) -> None:
    """Random batches (one task's or mixed, one class or several, new or seen children)
    give the same counts through ``count_columns`` as through ``count``."""
    rng = random.Random(seed)
    states = [Success(), Cached(), Failed(), Retrying(), None, Running()]
    by_columns, by_rows = RunProgress(STRUCTURE), RunProgress(STRUCTURE)
    for _ in range(30):
        slugs = ["a-1"] if rng.random() < 0.7 else ["a-1", "b-1", "zz-9"]
        classes = [rng.choice(states)] if rng.random() < 0.6 else states
        start = rng.randrange(0, 200)
        batch = [
            (slug, -1 if slug == "b-1" else start + rng.randrange(0, 40), rng.choice(classes))
            for slug in (rng.choice(slugs) for _ in range(rng.randrange(0, 50)))
        ]
        if rng.random() < 0.1:
            batch.insert(0, ("a-1", -1, Mapped(map_states=[Success()] * 240)))
        _columns(by_columns, batch)
        by_rows.count(iter(batch))
        assert _counts(by_columns) == _counts(by_rows)
