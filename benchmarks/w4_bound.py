"""What bounds W4 from below: the work a cache hit shares with a run, against the work only
a run does (benchmarks/RESULTS.md, "Session 13").

    python -m benchmarks.w4_bound [--n 200000] [--repeat 5]

Prints, per task run (the minimum over ``repeat`` timings of ``n`` calls each):

* ``R``: what a run of a trivial task does and a hit does not: a ``Running`` state, the
  call, a copy of the Result carrying the value, a ``Success`` state;
* one INFO line written the cheapest way Python can (an f-string with a fixed time prefix,
  ``write`` and ``flush`` to /dev/null, as a ``StreamHandler`` flushes every record);
* one INFO line through flowcore's own log path.

A hit writes the same two lines as a run (Prefect 1's task run does), so a hit can cost at
most half a run only if those lines cost less than ``R``.
"""

from __future__ import annotations

import argparse
import logging
import os
import timeit
from collections.abc import Callable


def per_call_us(fn: Callable[[], object], n: int, repeat: int) -> float:
    """The cheapest of ``repeat`` timings of ``n`` calls of ``fn``, in microseconds a call."""
    return min(timeit.repeat(fn, number=n, repeat=repeat)) / n * 1e6


def measure(n: int, repeat: int) -> dict[str, float]:
    from flowcore.engine.result.base import Result
    from flowcore.engine.state import Running, Success
    from flowcore.utilities.logging import get_child_logger, log

    def inc(x: int) -> int:
        return x + 1

    carrier = Result()

    def run_only() -> object:
        Running("Starting task run.")
        value = inc(1)
        result = carrier.copy()
        result.value = value
        return Success(result=result, message="Task run succeeded.")

    with open(os.devnull, "w") as devnull:
        prefix = "[2026-12-06 05:40:00,"

        def cheapest_line() -> None:
            devnull.write(
                f"{prefix}{123:03d}] INFO - flowcore.Task | Task 'inc': Starting task run...\n"
            )
            devnull.flush()

        parent = logging.getLogger("flowcore")
        streams = [(h, h.stream) for h in parent.handlers if isinstance(h, logging.StreamHandler)]
        for handler, _ in streams:
            handler.setStream(devnull)
        try:
            logger = get_child_logger(parent, "Task")
            figures = {
                "R (Running, call, Result, Success)": per_call_us(run_only, n, repeat),
                "cheapest flushed INFO line": per_call_us(cheapest_line, n, repeat),
                "flowcore's INFO line": per_call_us(
                    lambda: log(logger, logging.INFO, "Task 'inc': Starting task run..."),
                    n,
                    repeat,
                ),
            }
        finally:
            for handler, stream in streams:
                handler.setStream(stream)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w4_bound")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    figures = measure(args.n, args.repeat)
    for name, value in figures.items():
        print(f"{name}: {value:.2f} us")
    lines = 2 * figures["cheapest flushed INFO line"]
    run_only = figures["R (Running, call, Result, Success)"]
    verdict = "cannot" if lines > run_only else "could"
    print(
        f"two lines at the cheapest {lines:.2f} us vs R {run_only:.2f} us: a hit that writes "
        f"them {verdict} cost <= 0.5x a run"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
