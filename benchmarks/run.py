"""Run the workloads side by side and print one markdown table.

    python -m benchmarks [--only W1,W3] [--size small|default] [--repeat N]
                         [--prefect-python PATH] [--prefect-repeat N] [--prefect-fraction F]
                         [--systems flowcore,dask,...] [--json PATH] [--timeout S]

Every (workload, system) pair runs in its own fresh subprocess (``benchmarks._worker``), so
imports, caches and peak RSS of one system never leak into another's. flowcore, dask,
joblib and plain Python run under this interpreter; Prefect 1.4.1 runs the very same
workload code under ``--prefect-python``. W5 runs a setup process, then one new process per
timed repetition. The table gives the median of the timed repetitions, the median per task
(median / N), the peak RSS of the measuring process and the per-task ratio to flowcore
(> 1 means slower than flowcore). Exit status: 0 unless a measurement failed or timed out
("n/a" rows are not failures).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.workloads import WORKLOADS, module_for  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ALL_SYSTEMS = ("flowcore", "prefect", "dask", "joblib", "python")
LOGGING_NOTE = (
    "logging: default configuration for flowcore and Prefect (level INFO, their own "
    "handler and format); the handler's stream is redirected to /dev/null, so records are "
    "built and formatted but not printed"
)


@dataclass
class Row:
    workload: str
    system: str
    n: int
    status: str  # ok | na | error | timeout
    times: list[float] = field(default_factory=list)
    note: str = ""
    peak_rss_mib: float | None = None
    rss_after_import_mib: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.status == "ok" and self.times else None

    @property
    def per_task_us(self) -> float | None:
        median = self.median
        return None if median is None else median / max(self.n, 1) * 1e6


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="flowcore benchmarks (docs: benchmarks/README.md, BENCHMARKS.md)",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated workload ids, e.g. W1,W3 (default: all)"
    )
    parser.add_argument("--size", choices=("small", "default"), default="default")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed repetitions for every non-Prefect system (default: per workload, "
        "5 for fast ones, 3 for slow ones, 1 for SCALE)",
    )
    parser.add_argument("--prefect-python", default=None, help="python of a prefect==1.4.1 venv")
    parser.add_argument(
        "--prefect-repeat",
        type=int,
        default=None,
        help="timed repetitions for Prefect (default: 3, or 1 for W3 and W6)",
    )
    parser.add_argument(
        "--prefect-fraction",
        type=float,
        default=1.0,
        help="run Prefect on N * F items (per-task figures stay comparable; the N column "
        "shows the size used)",
    )
    parser.add_argument(
        "--systems", default="", help=f"comma-separated subset of {', '.join(ALL_SYSTEMS)}"
    )
    parser.add_argument("--json", default=None, help="write raw numbers to this file")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per measuring process"
    )
    args = parser.parse_args(argv)
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    args.workloads = only or list(WORKLOADS)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ALL_SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {unknown}; choose from {list(ALL_SYSTEMS)}")
    args.system_filter = systems or list(ALL_SYSTEMS)
    if args.prefect_fraction <= 0 or args.prefect_fraction > 1:
        parser.error("--prefect-fraction must be in (0, 1]")
    return args


_SCRATCH = tempfile.mkdtemp(prefix="flowcore-bench-")
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
_RUNS_STORE = os.path.join(_SCRATCH, "flowcore.db")


def _child_env() -> dict[str, str]:
    """This environment minus logging overrides, with the repository importable. flowcore's
    runs are recorded as by default (a SQLite run store), in a store of the benchmark's own
    rather than the user's ``~/.flowcore/flowcore.db``. Bytecode is cached as on a user's
    machine (in a directory of the benchmark's own, even when ``PYTHONDONTWRITEBYTECODE``
    is set here): otherwise every fresh process would compile the modules a run imports
    lazily, and W5's cold runs would time the compiler."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PREFECT__LOGGING__", "FLOWCORE__LOGGING__"))
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = os.path.join(_SCRATCH, "pycache")
    env.setdefault("FLOWCORE__RUNS__STORE", _RUNS_STORE)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


def _run_worker(
    python: str,
    workload: str,
    system: str,
    n: int,
    repeat: int,
    warmup: int,
    phase: str,
    workdir: str,
    timeout: float,
) -> dict[str, Any]:
    """One worker process; its output is kept in a log file shown only on failure."""
    with tempfile.TemporaryDirectory(prefix="fcbench-out-") as tmp:
        out = os.path.join(tmp, "result.json")
        log_path = os.path.join(tmp, "worker.log")
        command = [
            python,
            "-m",
            "benchmarks._worker",
            workload,
            system,
            "--n",
            str(n),
            "--repeat",
            str(repeat),
            "--warmup",
            str(warmup),
            "--phase",
            phase,
            "--workdir",
            workdir,
            "--out",
            out,
        ]
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=_child_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the worker and its dask workers
                process.wait()
                return {"status": "timeout", "note": f"timeout after {timeout:.0f} s"}
        result: dict[str, Any]
        try:
            with open(out) as handle:
                result = json.load(handle)
        except (OSError, ValueError):
            result = {"status": "error", "note": f"worker exited with {process.returncode}"}
        if result.get("status") == "error":
            with open(log_path) as handle:
                tail = handle.read().splitlines()[-40:]
            print(f"--- {workload} {system} ({phase}) failed; worker log tail:", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)
        return result


def _measure(args: argparse.Namespace, workload: str, system: str) -> Row:
    module = module_for(workload)
    prefect = system == "prefect"
    python = args.prefect_python if prefect else sys.executable
    n = module.SIZES[args.size]
    if prefect:
        n = max(1, round(n * args.prefect_fraction))
    if prefect and args.prefect_repeat is not None:
        repeat = args.prefect_repeat
    elif not prefect and args.repeat is not None:
        repeat = args.repeat
    else:
        repeat = module.REPEAT.get(system, module.REPEAT["default"])
        if args.size == "small":
            repeat = min(repeat, 3)
    warmup = module.WARMUP.get(system, module.WARMUP["default"])
    workdir = tempfile.mkdtemp(prefix=f"fcbench-{workload}-{system}-")
    start = time.perf_counter()
    try:
        if getattr(module, "NEW_PROCESS_PER_REPEAT", False):
            result = _run_worker(python, workload, system, n, 0, 0, "setup", workdir, args.timeout)
            if result["status"] == "ok":
                runs = [
                    _run_worker(python, workload, system, n, 1, 0, "measure", workdir, args.timeout)
                    for _ in range(repeat)
                ]
                failed = [r for r in runs if r["status"] != "ok"]
                if failed:
                    result = failed[0]
                else:
                    result = dict(runs[0])
                    result["times"] = [t for r in runs for t in r["times"]]
                    result["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
                    result["rss_after_import_mib"] = max(r["rss_after_import_mib"] for r in runs)
                    result["note"] = (result.get("note", "") + "; one new process per rep").strip(
                        "; "
                    )
        else:
            result = _run_worker(
                python, workload, system, n, repeat, warmup, "measure", workdir, args.timeout
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return Row(
        workload=workload,
        system=system,
        n=n,
        status=result["status"],
        times=result.get("times", []),
        note=result.get("note", ""),
        peak_rss_mib=result.get("peak_rss_mib"),
        rss_after_import_mib=result.get("rss_after_import_mib"),
        extra=result.get("extra", {}),
        versions=result.get("versions", {}),
        wall_s=time.perf_counter() - start,
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def format_table(rows: list[Row]) -> str:
    """The markdown table of ``rows`` (ratios are per task, against the same workload's flowcore)."""
    flowcore = {r.workload: r.per_task_us for r in rows if r.system == "flowcore"}
    lines = [
        "| workload | system | N | reps | median s | per task us | peak RSS MiB "
        "| vs flowcore | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        per_task = row.per_task_us
        base = flowcore.get(row.workload)
        ratio = f"{per_task / base:.3g}x" if per_task is not None and base else "-"
        if row.status == "ok":
            note = row.note
        else:
            note = row.note if row.note.startswith("n/a") else f"{row.status}: {row.note}"
        lines.append(
            f"| {row.workload} | {row.system} | {row.n:,} | {len(row.times) or '-'} "
            f"| {_fmt_seconds(row.median)} | {_fmt(per_task)} | {_fmt(row.peak_rss_mib)} "
            f"| {ratio} | {note.replace('|', '/')} |"
        )
    return "\n".join(lines)


def _header(args: argparse.Namespace, rows: list[Row], argv: list[str]) -> str:
    versions: dict[str, str] = {}
    prefect_versions: dict[str, str] = {}
    for row in rows:
        target = prefect_versions if row.system == "prefect" else versions
        for name, version in row.versions.items():
            target.setdefault(name, version)
    packages = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python")
    command = shlex.join(["python", "-m", "benchmarks", *argv])
    lines = [
        "# flowcore benchmarks",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        f"- machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- packages: {packages or '-'}",
        f"- command: `{command}`",
        f"- size: {args.size}; every system in a fresh subprocess; median of `reps` timed "
        "repetitions (after untimed warm-ups where the workload has them); per task = "
        "median / N; peak RSS = `ru_maxrss` of the measuring process (W6: client process "
        "only); vs flowcore = per-task ratio (> 1: slower than flowcore)",
        f"- {LOGGING_NOTE}",
    ]
    if args.prefect_python:
        described = ", ".join(f"{k} {v}" for k, v in prefect_versions.items())
        lines.append(
            f"- prefect: `{args.prefect_python}` ({described or 'not run'})"
            + (f", on N x {args.prefect_fraction:g}" if args.prefect_fraction != 1 else "")
        )
    return "\n".join(lines)


def _wait_for_writers(timeout: float = 600.0) -> float:
    """Wait until the run-store writer processes of this benchmark's store have exited
    (Linux; elsewhere at once), and return how long that took. A flow process's writer
    outlives it for as long as its fold at exit takes (``flowcore/runs/writer.py``: a
    million children's rows take seconds), and must not run beside the next measurement."""
    marker = f"FLOWCORE__RUNS__STORE={_RUNS_STORE}".encode()
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        alive = False
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if b"flowcore.runs.writer" not in (entry / "cmdline").read_bytes():
                    continue
                alive = marker in (entry / "environ").read_bytes().split(b"\0")
            except OSError:  # (gone meanwhile, or not ours to read)
                continue
            if alive:
                break
        if not alive:
            break
        time.sleep(0.1)
    return time.perf_counter() - start


def _create_run_store() -> None:
    """Create the benchmark's run store before the first workload, as a user's
    ``~/.flowcore/flowcore.db`` exists after their first run: creating it (SQLAlchemy
    and Alembic, a few tenths of a second of the writer process's CPU) would otherwise
    overlap the timed runs of whichever workload came first."""
    code = (
        "from flowcore.runs import RunStore, store_url\n"
        "url = store_url()\n"  # (runs.store, from the environment; None: the store is off)
        "if url is not None:\n"
        "    RunStore(url).write(lambda changes: None)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=_child_env(), check=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    rows: list[Row] = []
    started = time.perf_counter()
    if "flowcore" in args.system_filter:
        _create_run_store()
    for workload in args.workloads:
        module = module_for(workload)
        for system in module.SYSTEMS:
            if system not in args.system_filter:
                continue
            if system == "prefect" and not args.prefect_python:
                continue
            print(
                f"[{time.perf_counter() - started:7.1f} s] {workload} {system} ...",
                file=sys.stderr,
                flush=True,
            )
            row = _measure(args, workload, system)
            waited = _wait_for_writers() if system == "flowcore" else 0.0
            print(
                f"[{time.perf_counter() - started:7.1f} s] {workload} {system}: {row.status} "
                f"median={_fmt_seconds(row.median)} s per-task={_fmt(row.per_task_us)} us "
                f"({row.wall_s:.1f} s wall"
                + (
                    f", then {waited:.1f} s for its run-store writer to finish"
                    if waited >= 0.1
                    else ""
                )
                + f") {row.note}",
                file=sys.stderr,
                flush=True,
            )
            rows.append(row)
    print(_header(args, rows, argv))
    print()
    print(format_table(rows))
    print()
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        payload = {
            "command": shlex.join(["python", "-m", "benchmarks", *argv]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "size": args.size,
            "logging": LOGGING_NOTE,
            "rows": [
                {**asdict(row), "median_s": row.median, "per_task_us": row.per_task_us}
                for row in rows
            ],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 1 if any(row.status in ("error", "timeout") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
