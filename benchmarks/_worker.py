"""One (workload, system, phase) measurement in a fresh process; used by ``benchmarks.run``.

    python -m benchmarks._worker W1 flowcore --n 500 --repeat 5 --warmup 1 --out result.json

Writes a JSON object to ``--out``: ``status`` ("ok", "na" or "error"), ``times`` (seconds of
each timed repetition), ``note``, ``extra``, ``rss_after_import_mib`` (peak RSS once the
system's packages are imported), ``peak_rss_mib`` (at the end) and ``versions``. Runs under
the flowcore interpreter or under the Prefect 1.4.1 one, so it imports only the standard
library and ``benchmarks`` at module level.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import traceback
from typing import Any

from benchmarks._common import ENGINES, Context, NotAvailable, import_engine, peak_rss_mib
from benchmarks.workloads import module_for

_PREIMPORT = {
    "flowcore": ("flowcore",),
    "prefect": ("prefect",),
    "dask": ("dask", "distributed"),
    "joblib": ("joblib",),
    "python": (),
}


def _versions(system: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("flowcore", "prefect", "dask", "distributed", "joblib"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "?"))
    return versions


def measure(workload: str, system: str, ctx: Context) -> dict[str, Any]:
    module = module_for(workload)
    for name in _PREIMPORT[system]:
        try:
            if name in ENGINES:
                import_engine(name)
            else:
                importlib.import_module(name)
        except ImportError:
            pass  # the workload function reports what is missing
    rss_after_import = peak_rss_mib()
    try:
        if system in ENGINES:
            measurement = module.run_engine(system, ctx)
        else:
            measurement = getattr(module, f"run_{system}")(ctx)
    except NotAvailable as exc:
        return {"status": "na", "note": str(exc), "versions": _versions(system)}
    return {
        "status": "ok",
        "times": measurement.times,
        "note": measurement.note,
        "extra": measurement.extra,
        "rss_after_import_mib": rss_after_import,
        "peak_rss_mib": peak_rss_mib(),
        "versions": _versions(system),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._worker")
    parser.add_argument("workload")
    parser.add_argument("system")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeat", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--phase", default="measure", choices=("setup", "measure"))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    ctx = Context(args.n, args.repeat, args.warmup, args.workdir, args.phase)
    status = 0
    try:
        result = measure(args.workload, args.system, ctx)
    except Exception:  # reported in the table; the traceback goes to the worker's log
        traceback.print_exc()
        result = {"status": "error", "note": traceback.format_exc(limit=0).strip()[-200:]}
        status = 1
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    return status


if __name__ == "__main__":
    sys.exit(main())
