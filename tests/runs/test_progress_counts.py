"""What the live progress display counts (``RunProgress.count`` and ``count_columns``),
without drawing it: a task run once, in its latest category; a mapped parent gives its
task's total; and how it draws on a terminal and elsewhere."""

from __future__ import annotations

import io
import logging
import random
import sys

import pytest

from flowcore.engine.state import (
    Cached,
    Cancelled,
    Failed,
    Mapped,
    Retrying,
    Running,
    State,
    Success,
)
from flowcore.runs import progress as progress_module
from flowcore.runs.progress import RunProgress
from flowcore.utilities.logging import get_logger

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


def test_a_child_retried_or_cancelled_leaves_its_column() -> None:
    # (a child waiting for its retry stayed under "failed", and children cancelled by
    # Ctrl-C were counted as done)
    progress = RunProgress(STRUCTURE)
    _columns(progress, [("a-1", -1, Mapped(map_states=[Success()] * 4))])
    _columns(progress, [("a-1", i, Failed()) for i in range(2)])
    _columns(progress, [("a-1", 0, Retrying())])
    assert _counts(progress)["a-1"] == (0, 0, 1, 4)
    _columns(progress, [("a-1", 1, None)])  # (a recorder's Running: the retry began)
    assert _counts(progress)["a-1"] == (0, 0, 0, 4)
    _columns(progress, [("a-1", i, Success()) for i in range(3)])
    _columns(progress, [("a-1", i, Cancelled()) for i in (2, 3)])
    assert _counts(progress)["a-1"] == (2, 0, 0, 4)


def test_the_eta_is_the_rate_since_children_were_first_seen_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    progress = RunProgress(STRUCTURE)
    line = progress._lines["a-1"]
    _columns(progress, [("a-1", -1, Mapped(map_states=[Success()] * 100))])
    _columns(progress, [("a-1", i, Success()) for i in range(10)])  # finished before
    assert progress._eta(line) == ""  # (first seen: no rate yet)
    clock[0] += 2.0
    _columns(progress, [("a-1", i, Success()) for i in range(10, 20)])  # 10 in 2 s
    assert progress._eta(line) == "0:00:16"  # 80 left at 5 a second


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_log_lines_are_written_above_the_display(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the display redraws by moving up over its own lines: a log line written straight
    # to the terminal meanwhile was erased, and copies of the table were left behind
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    handler = logging.StreamHandler(terminal)
    logging.getLogger("flowcore").addHandler(handler)
    try:
        progress = RunProgress(STRUCTURE, stream=terminal)
        progress.start()
        assert handler.stream is sys.stdout and sys.stdout is not terminal  # (rich's proxy)
        get_logger("progress-test").warning("a line during the run")
        progress.stop()
    finally:
        logging.getLogger("flowcore").removeHandler(handler)
    assert handler.stream is terminal and sys.stdout is terminal
    written = terminal.getvalue()
    assert written.count("a line during the run") == 1  # (flowcore's own writes elsewhere)
    assert written.index("a line during the run") < written.index("total")  # above it


def test_lines_written_while_the_display_is_shown_do_not_each_redraw_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # each line printed above the display made rich draw the table again: two log lines
    # per task run made a run on a terminal hundreds of times slower; lines now go above
    # it in batches, a few times a second
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("TERM", "xterm-256color")  # (rich redraws only on a capable terminal)
    handler = logging.StreamHandler(terminal)
    logging.getLogger("flowcore").addHandler(handler)
    progress = RunProgress(STRUCTURE, stream=terminal)
    try:
        progress.start()
        for i in range(300):
            get_logger("progress-test").warning(f"line {i}")
        progress.stop()
    finally:
        logging.getLogger("flowcore").removeHandler(handler)
    written = terminal.getvalue()
    assert all(f"line {i}\n" in written for i in range(300))
    drawn = written.count("total")  # (in the table's header: once each time it is drawn)
    assert drawn < 50, drawn


def test_a_stdout_sent_to_a_file_stays_there_while_the_display_is_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (the display moved a run's prints from a stdout redirected to a file onto the terminal)
    terminal, to_file = _Terminal(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", to_file)
    progress = RunProgress(STRUCTURE, stream=terminal)
    progress.start()
    assert sys.stdout is to_file
    print("a print during the run")
    progress.stop()
    assert to_file.getvalue() == "a print during the run\n"
    assert "a print" not in terminal.getvalue()


def test_off_a_terminal_the_display_ends_its_last_line() -> None:
    # (forced on with stderr piped, the run's last line was glued to the table's)
    stream = io.StringIO()
    progress = RunProgress(STRUCTURE, stream=stream)
    progress.start()
    progress.stop()
    assert stream.getvalue().endswith("\n") and "total" in stream.getvalue()


@pytest.mark.parametrize("seed", range(20))
def test_batches_in_columns_count_as_one_report_at_a_time(seed: int) -> None:
    """Random batches (one task's or mixed, one class or several, new or seen children)
    give the same counts through ``count_columns`` as through ``count``."""
    rng = random.Random(seed)
    states = [Success(), Cached(), Failed(), Retrying(), None, Running(), Cancelled()]
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
