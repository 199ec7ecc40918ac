"""W8: the run store's cost. W1 (a chain of N tasks) and W3 (a map of 20 N children) with
the store on (SQLite, the default) and off (``runs.store = "none"``), and the cost of
resuming a failed map.

The row's times are W1 with the store on; the note gives all four per-task figures and
the two ratios (target <= 1.10x). A repetition is ``RUNS_PER_REP`` runs back to back, as
a user's runs come, and, with the store on, it is timed until the store has written
everything they produced (a ``store.flush()`` after the last), so all of the writer
writer's work is billed, while its commits overlap the runs as they do in use. On and off
alternate, repetition by repetition, so drift of the machine hits both alike; after each
store-on repetition the benchmark waits, untimed, until the writer process is idle (its
WAL checkpoint would otherwise run during the next store-off one). The note also
gives the ratios of this process's CPU time (all its threads, not the writer process's):
on a busy machine the wall clock mostly measures the scheduler, CPU time what recording
takes from the flow's process.

Progress: W3 with the live progress display on (``progress=True``) vs off, the store off,
and, as the target is put, a map of 200 N children (100,000) with and without it (target:
at most 5% slower).

Resume: a map of 20 N children (checkpointed to a LocalResult) feeding a sum, with 10
children failing; then ``flow.run(resume=RUN_ID)``, timed. Target: the 10 children plus a
constant under a second (the constant: reading the run back, and the sum reading the
9,990 checkpointed values it needs).
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import Context, Measurement, NotAvailable, check, import_engine, inc

ID = "W8"
TITLE = "run store on (SQLite) vs off: W1 and W3 per task; resuming a map"
SIZES = {"small": 20, "default": 500}
SYSTEMS = ("flowcore",)
REPEAT = {"default": 5}
WARMUP = {"default": 1}
RUNS_PER_REP = 5


def run_engine(name: str, ctx: Context) -> Measurement:
    if name != "flowcore":
        raise NotAvailable("flowcore's own run store")
    mod = import_engine(name)
    from flowcore.configuration import config
    from flowcore.engine.results import LocalResult
    from flowcore.executors import LocalExecutor
    from flowcore.runs import open_store

    workdir = Path(ctx.workdir or tempfile.mkdtemp(prefix="flowcore-w8-"))
    store_path = str(workdir / "runs.db")
    task = mod.task(inc)
    with mod.Flow("w8-chain") as chain:
        last = task(0)
        for _ in range(ctx.n - 1):
            last = task(last)
    children = 20 * ctx.n
    with mod.Flow("w8-map") as mapped:
        task.map(list(range(children)))

    cpu: dict[tuple[str, str], list[float]] = {}

    def run(flow: Any, spec: str, progress: bool = False) -> tuple[float, float]:
        """Seconds per run, over RUNS_PER_REP runs and the store's flush: wall clock, and
        CPU of this process (all its threads: the flow's, and those recording it)."""
        config.set_path("runs.store", spec)
        gc.collect()  # (untimed, as before every other workload's repetitions)
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(RUNS_PER_REP):
            state = flow.run(executor=LocalExecutor(), progress=progress)
            check(state.is_successful(), f"flow state {state!r}")
        store = open_store()
        if store is not None:
            store.flush()
        wall = (time.perf_counter() - start) / RUNS_PER_REP
        used = (time.process_time() - start_cpu) / RUNS_PER_REP
        if store is not None:
            writer_idle()
        return wall, used

    def writer_cpu() -> float:
        """CPU seconds the store's writer process has used so far (0: none)."""
        pid = getattr(open_store(store_path), "writer_pid", None)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def writer_idle() -> None:
        """(Untimed.) Wait until the writer process has stopped working: after a flush it
        may still checkpoint SQLite's WAL (a W3 repetition writes about 2 MB), which used
        to run beside the next, store-off, measurement and slow it. Its CPU time is in
        the note (the writer process's CPU per task run)."""
        last, deadline = writer_cpu(), time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.03)
            now = writer_cpu()
            if now == last:
                return
            last = now

    # (first, in a process that holds no other workload's flows and states yet, as a
    # user's flow script is)
    big_ratio = _progress_on_a_big_map(mod, 200 * ctx.n, config)
    times: dict[tuple[str, str], list[float]] = {}
    with_progress: list[float] = []
    writer_used = 0.0
    for index in range(ctx.warmup + ctx.repeat):
        if index == ctx.warmup:
            writer_used = -writer_cpu()
        for flow_name, flow in (("W1", chain), ("W3", mapped)):
            for spec in ("none", store_path):
                elapsed, used = run(flow, spec)
                if index >= ctx.warmup:
                    times.setdefault((flow_name, spec), []).append(elapsed)
                    cpu.setdefault((flow_name, spec), []).append(used)
        elapsed, used = run(mapped, "none", progress=True)
        if index >= ctx.warmup:
            with_progress.append(elapsed)
            cpu.setdefault(("W3p", "none"), []).append(used)
    writer_used += writer_cpu()
    recorded = ctx.repeat * RUNS_PER_REP * (ctx.n + children)
    progress_ratio = statistics.median(with_progress) / statistics.median(times[("W3", "none")])

    def cpu_ratio(on: tuple[str, str], off: tuple[str, str]) -> float:
        return statistics.median(cpu[on]) / statistics.median(cpu[off])

    cpu_ratios = {
        "W1": cpu_ratio(("W1", store_path), ("W1", "none")),
        "W3": cpu_ratio(("W3", store_path), ("W3", "none")),
        "W3p": cpu_ratio(("W3p", "none"), ("W3", "none")),
    }

    def per_task(flow_name: str, spec: str) -> float:
        count = ctx.n if flow_name == "W1" else children
        return statistics.median(times[(flow_name, spec)]) / count * 1e6

    figures = {
        f"{w}_{'on' if spec == store_path else 'off'}_us": per_task(w, spec)
        for w in ("W1", "W3")
        for spec in ("none", store_path)
    }
    resume_s, rerun = _resume(mod, workdir, store_path, children, config, LocalResult)
    note = (
        f"W1 off {figures['W1_off_us']:.1f} us, on {figures['W1_on_us']:.1f} us "
        f"({figures['W1_on_us'] / figures['W1_off_us']:.2f}x); "
        f"W3 off {figures['W3_off_us']:.1f} us, on {figures['W3_on_us']:.1f} us "
        f"({figures['W3_on_us'] / figures['W3_off_us']:.2f}x); "
        f"W3 with progress shown {progress_ratio:.2f}x; "
        f"a map of {200 * ctx.n} with progress shown {big_ratio:.2f}x (store off); "
        f"this process's CPU on/off: W1 {cpu_ratios['W1']:.2f}x, W3 {cpu_ratios['W3']:.2f}x, "
        f"W3 with progress {cpu_ratios['W3p']:.2f}x; "
        f"the writer process's CPU {writer_used / recorded * 1e6:.1f} us per task run; "
        f"resuming a map of {children} with 10 failed: {resume_s * 1e3:.0f} ms, {rerun} children ran"
    )
    config.set_path("runs.store", "none")
    return Measurement(
        times[("W1", store_path)],
        note=note,
        extra={
            **figures,
            "progress_ratio": progress_ratio,
            "progress_big_map_ratio": big_ratio,
            "cpu_ratios": cpu_ratios,
            "writer_cpu_us_per_task": writer_used / recorded * 1e6,
            "resume_s": resume_s,
            "resume_children_run": rerun,
        },
    )


def _progress_on_a_big_map(mod: Any, children: int, config: Any) -> float:
    """The issue's progress target as it is put: a map of 100,000 children (at the default
    size) with the progress display shown vs not, store off; median of five runs each,
    alternating, after one of each untimed."""
    from flowcore.executors import LocalExecutor

    with mod.Flow("w8-big-map") as flow:
        mod.task(inc).map(list(range(children)))
    config.set_path("runs.store", "none")
    times: dict[bool, list[float]] = {False: [], True: []}
    for index in range(6):
        for progress in (False, True):
            gc.collect()
            start = time.perf_counter()
            state = flow.run(executor=LocalExecutor(), progress=progress)
            elapsed = time.perf_counter() - start
            check(state.is_successful(), f"flow state {state!r}")
            if index:
                times[progress].append(elapsed)
    return statistics.median(times[True]) / statistics.median(times[False])


def _resume(
    mod: Any, workdir: Path, store_path: str, children: int, config: Any, result_cls: Any
) -> tuple[float, int]:
    broken = workdir / "broken"
    ran: list[int] = []

    def flaky(x: int) -> int:
        ran.append(x)
        if x % (children // 10) == 7 and broken.exists():
            raise ValueError(f"child {x} fails")
        return x + 1

    def total(values: list[int]) -> int:
        return sum(values)

    with mod.Flow("w8-resume", result=result_cls(dir=str(workdir / "results"))) as flow:
        mod.task(total)(mod.task(flaky).map(list(range(children))))
    config.set_path("runs.store", store_path)
    broken.touch()
    first = flow.run(context={"checkpointing": True})
    check(first.is_failed(), "the first run fails")
    broken.unlink()
    ran.clear()
    start = time.perf_counter()
    second = flow.run(resume=first.flow_run_id, context={"checkpointing": True})
    elapsed = time.perf_counter() - start
    check(second.is_successful(), f"resumed state {second!r}")
    check(len(ran) == 10, f"{len(ran)} children ran again, expected 10")
    return elapsed, len(ran)
