"""A process that writes runs to a store, for the concurrency and SIGKILL tests.

``python -m tests.runs.writer_process URL RUN_ID N [--forever]``: starts run RUN_ID, submits
N task states (map indices 0..N-1) and N // 5 log lines, finishes the run and closes the
store. With ``--forever`` it submits task states one by one, a few hundred a second, until
it is killed; each event's time is when it was submitted. Once the run has started, it
prints ``writer pid N`` (the store's writer process) on stdout.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from datetime import datetime, timezone

from flowcore.runs import RunStore
from flowcore.runs.events import FlowRunStarted, FlowRunState, LogLine, TaskRunState


def main(url: str, run_id: str, n: int, forever: bool) -> None:
    store = RunStore(url)
    now = datetime.now(timezone.utc)
    store.submit(FlowRunStarted(run_id, "writer", now, host=socket.gethostname(), pid=os.getpid()))
    store.submit(FlowRunState(run_id, "Running", None, now))
    store.flush()
    print(f"writer pid {store.writer_pid}", flush=True)
    index = 0
    while forever or index < n:
        now = datetime.now(timezone.utc)
        store.submit(TaskRunState(run_id, "work-1", index, "Success", None, now.timestamp()))
        if index % 5 == 0:
            store.submit(
                LogLine(
                    run_id, "work-1", index, now.timestamp(), 20, "flowcore.task", f"line {index}"
                )
            )
        index += 1
        if forever:
            time.sleep(0.003)
    store.submit(FlowRunState(run_id, "Success", None, datetime.now(timezone.utc)))
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), "--forever" in sys.argv[4:])
