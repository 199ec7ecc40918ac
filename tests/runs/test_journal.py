"""The run journal's rows (flowcore.runs.journal): packed in the flow's process, inserted
as they are by the writer, unpacked by the reader that folds them."""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from flowcore.runs import RunStore, journal
from flowcore.runs.events import LogLine, TaskRunState


def _state(run_id: str, slug: str, at: float) -> tuple[object, ...]:
    return tuple(TaskRunState(run_id, slug, -1, "Success", "done", at, 1, None, None, at - 1))


def _line(run_id: str, at: float, message: str) -> tuple[object, ...]:
    return tuple(LogLine(run_id, None, -1, at, 20, "flowcore.FlowRunner", message))


def test_pack_makes_one_row_per_run_in_the_order_given() -> None:
    a1, a2 = _state("a", "t-1", 10.0), _state("a", "t-2", 11.0)
    b1 = _state("b", "t-1", 12.0)
    line_a, line_c = _line("a", 9.0, "first"), _line("c", 13.0, "only a line")

    rows = journal.pack([[a1], [a2, *[]], [b1]], [line_a, line_c])

    assert [(run_id, earliest) for run_id, earliest, _ in rows] == [
        ("a", 10.0),  # its first task state's time, although a line came earlier
        ("b", 12.0),
        ("c", 13.0),  # no task states: its first line's
    ]
    unpacked = {run_id: journal.unpack(blob) for run_id, _, blob in rows}
    assert unpacked == {"a": ([a1, a2], [line_a]), "b": ([b1], []), "c": ([], [line_c])}


def test_pack_splits_a_list_that_holds_several_runs() -> None:
    a1, b1, a2 = _state("a", "t-1", 1.0), _state("b", "t-1", 2.0), _state("a", "t-2", 3.0)

    rows = journal.pack([[a1, b1, a2], []], [])

    assert {run_id: journal.unpack(blob)[0] for run_id, _, blob in rows} == {
        "a": [a1, a2],
        "b": [b1],
    }


class _Planted:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("echo planted",))


def test_unpack_refuses_a_blob_that_names_a_callable() -> None:
    blob = pickle.dumps(([_Planted()], []))

    with pytest.raises(pickle.UnpicklingError, match="run journal: unexpected object"):
        journal.unpack(blob)


def test_a_planted_or_damaged_journal_row_is_dropped_with_a_warning_and_a_line_in_its_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Nothing a planted row names runs; the read that folds it answers (one unreadable
    row does not make the store unreadable), and the run says it is incomplete. (The
    WARNING comes from the store's writer process, which folds for this one's reads.)"""
    path = tmp_path / "runs.db"
    store = RunStore(f"sqlite:///{path}")
    try:
        store.submit_task_states([_state("run-1", "t-1", 1_700_000_000.0)])
        store.flush()
        marker = tmp_path / "ran"
        planted = pickle.dumps(([], [(_Touch(str(marker)),)]))
        with closing(sqlite3.connect(path)) as conn, conn:
            for blob in (planted, planted[:-5], pickle.dumps(7)):  # planted, cut short, foreign
                conn.execute(
                    "INSERT INTO run_journal (run_id, events) VALUES (?, ?)", ("run-1", blob)
                )
        store.submit_task_states([_state("run-1", "t-2", 1_700_000_001.0)])
        store.flush()
        run = store.get_run("run-1")
        assert not marker.exists()
        assert run is not None and run.task_counts == {"Success": 2}  # the rows around them
        errors = [line for line in store.logs("run-1") if line.level == logging.ERROR]
        assert len(errors) == 3
        assert "unexpected object" in errors[0].message and "missing" in errors[0].message
        warned = capfd.readouterr().err
        assert warned.count("WARNING - flowcore.runs | run run-1: a journal row") == 3
        assert store.get_run("run-1") is not None  # dropped: not read (nor warned of) again
        assert "a journal row" not in capfd.readouterr().err
    finally:
        store.close()


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (Path(self.path),))
