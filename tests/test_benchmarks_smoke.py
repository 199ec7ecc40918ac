"""Smoke run of the benchmark harness (``benchmarks/``) on tiny sizes; no timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("W1", "W2", "W3", "W4", "W7")


def _table_rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in (*WORKLOADS, "SCALE", "W5", "W6"):
            rows[(cells[0], cells[1])] = cells
    return rows


def test_small_run_prints_a_row_per_workload_and_system(tmp_path: Path) -> None:
    out = tmp_path / "raw.json"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--size",
            "small",
            "--only",
            ",".join(WORKLOADS),
            "--json",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "redirected to /dev/null" in process.stdout
    rows = _table_rows(process.stdout)
    for workload in WORKLOADS:
        for system in ("flowcore", "dask", "python"):
            assert (workload, system) in rows, f"no {workload} {system} row:\n{process.stdout}"
    # columns: workload, system, N, reps, median s, per task us, peak RSS, vs flowcore, notes
    not_available = {("W4", "dask")}
    if rows[("W4", "joblib")][8] == "n/a (joblib not installed)":
        not_available.add(("W4", "joblib"))
    for (workload, system), cells in rows.items():
        if (workload, system) in not_available:
            assert cells[4] == "-" and cells[8].startswith("n/a"), cells
            continue
        float(cells[4])  # a number, not "-", "error" or "timeout"
        assert int(cells[3]) >= 1, cells
        assert float(cells[6]) > 0, cells
    assert rows[("W1", "flowcore")][7] == "1x"

    raw = json.loads(out.read_text())
    assert raw["size"] == "small"
    measured = [row for row in raw["rows"] if row["status"] == "ok"]
    assert {(row["workload"], row["system"]) for row in measured} == set(rows) - not_available
    for row in measured:
        assert len(row["times"]) == int(rows[(row["workload"], row["system"])][3])
        assert row["per_task_us"] == row["median_s"] / row["n"] * 1e6


def test_unknown_workload_is_a_usage_error() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "W1,W9"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 2
    assert "unknown workload(s) ['W9']" in process.stderr


def test_w8_measures_the_run_store_progress_and_resume() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "small", "--only", "W8"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    (row,) = [line for line in process.stdout.splitlines() if line.startswith("| W8 | flowcore")]
    for part in ("W1 off", "W3 off", "with progress shown", "with 10 failed", "10 children ran"):
        assert part in row, row


def test_w4_bound_prints_the_three_figures_and_the_comparison() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.w4_bound", "--n", "2000", "--repeat", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    lines = process.stdout.splitlines()
    names = (
        "R (Running, call, Result, Success)",
        "cheapest flushed INFO line",
        "flowcore's INFO line",
    )
    for name, line in zip(names, lines):
        assert line.startswith(f"{name}: ") and line.endswith(" us"), line
        assert float(line.split(": ")[1][:-3]) > 0
    assert lines[3].startswith("two lines at the cheapest "), lines
    assert "cost <= 0.5x a run" in lines[3]
    assert len(lines) == 4 and not process.stderr
