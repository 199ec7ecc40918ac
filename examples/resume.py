"""Resume a failed run: only what did not finish runs again.

A nightly job fetches 20 pages from a flaky service and totals them. On the first run
three fetches fail; the run is recorded in the run store (SQLite, in a temporary home
directory here) with every finished page checkpointed. After the "outage", the run is
resumed: the 17 pages that were fetched are read back from their checkpoints, and only
the 3 failed ones are fetched again.

Run it: ``python examples/resume.py``. (It sets up the outage and its own home directory
itself, so run it with ``python``; for your own flow file, the command line's ``flowcore run
FILE.py`` and then ``flowcore resume last`` do what ``main`` does here: docs/cli.md.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from flowcore import Flow, task
from flowcore.engine.results import LocalResult
from flowcore.runs import open_store
from flowcore.utilities.configuration import set_temporary_config

HOME = Path(tempfile.mkdtemp(prefix="flowcore-resume-example-"))
OUTAGE = HOME / "outage"  # while this file exists, pages 4, 9 and 15 fail
FETCHED = HOME / "fetched.log"


@task(max_retries=0)
def fetch(page: int) -> int:
    with open(FETCHED, "a") as log:
        log.write(f"{page}\n")
    if page in (4, 9, 15) and OUTAGE.exists():
        raise ConnectionError(f"page {page}: service unavailable")
    return page * 10


@task
def total(values: list[int]) -> int:
    return sum(values)


with Flow("nightly fetch", result=LocalResult(dir=str(HOME / "results"))) as flow:
    total(fetch.map(list(range(20))))


def fetched() -> list[int]:
    pages = sorted(int(line) for line in FETCHED.read_text().split())
    FETCHED.unlink()
    return pages


if __name__ == "__main__":
    settings = {
        "home_dir": str(HOME),
        "runs.store": str(HOME / "flowcore.db"),
        "flows.checkpointing": True,
    }
    with set_temporary_config(settings):
        OUTAGE.touch()
        first = flow.run()
        print(
            f"run 1 {first.flow_run_id[:8]}: {type(first).__name__}; fetched {len(fetched())} pages"
        )

        os.remove(OUTAGE)  # the service is back
        second = flow.run(resume=first.flow_run_id)
        (sum_task,) = flow.get_tasks(name="total")
        print(f"run 2 resumes run 1: {type(second).__name__}; fetched pages {fetched()}")
        print(f"total: {second.result[sum_task].result}")

        store = open_store()
        assert store is not None
        store.flush()
        for run in store.list_runs(flow="nightly fetch"):
            counts = ", ".join(f"{n} {s}" for s, n in sorted(run.task_counts.items()))
            print(
                f"recorded: {run.run_id[:8]} {run.state:8} resumed_from={(run.resumed_from or '-')[:8]}  {counts}"
            )
        store.close()  # (its writer is done with the file: the example's directory can go)
    shutil.rmtree(HOME, ignore_errors=True)
    print("EXAMPLE OK")
