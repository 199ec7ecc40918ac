"""cProfile one workload's timed runs for one engine, in this process.

    python -m benchmarks.hotspots W1 [--n 500] [--repeat 1] [--engine flowcore]
                                    [--sort tottime] [--top 15]

Only the timed repetitions are profiled (not the flow build, the warm-up or the checks).
W5 profiles its "measure" phase after running "setup" in a subprocess, so the hits are
cold as in the benchmark.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import subprocess
import sys
import tempfile

from benchmarks import _common
from benchmarks._common import ENGINES, Context
from benchmarks.workloads import WORKLOADS, module_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotspots")
    parser.add_argument("workload", choices=[w for w in WORKLOADS])
    parser.add_argument("--engine", choices=ENGINES, default="flowcore")
    parser.add_argument("--n", type=int, default=None, help="default: the default size")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    module = module_for(args.workload)
    n = args.n or module.SIZES["default"]
    workdir = tempfile.mkdtemp(prefix="fcbench-profile-")
    try:
        phase = "measure"
        if getattr(module, "NEW_PROCESS_PER_REPEAT", False):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks._worker",
                    args.workload,
                    args.engine,
                    "--n",
                    str(n),
                    "--repeat",
                    "0",
                    "--phase",
                    "setup",
                    "--workdir",
                    workdir,
                    "--out",
                    f"{workdir}/setup.json",
                ],
                check=True,
            )
        _common.PROFILER = cProfile.Profile()
        warmup = module.WARMUP.get(args.engine, module.WARMUP["default"])
        measurement = module.run_engine(
            args.engine, Context(n, args.repeat, warmup, workdir, phase)
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = sum(measurement.times)
    print(
        f"{args.workload} {args.engine} N={n}: {args.repeat} timed run(s), {total:.3f} s, "
        f"{total / args.repeat / n * 1e6:.1f} us per task (profiler overhead included)"
    )
    out = io.StringIO()
    stats = pstats.Stats(_common.PROFILER, stream=out)
    stats.sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
