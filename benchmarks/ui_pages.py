"""Server time of ``flowcore ui``'s pages over a big store (issue 13's "quick for 10,000
runs"): the runs page (first, a far page, filtered) and its JSON, and the page, JSON and
graph of a run with a 10,000-child map, over a SQLite store holding 10,000 runs.

    python -m benchmarks.ui_pages [WORKDIR]

The store is built once in WORKDIR (default: a new temporary directory) and reused on the
next call; pages are requested through Starlette's TestClient (no network), 15 times each
after one untimed request; medians and minima are printed in milliseconds.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path


def main(workdir: Path) -> None:
    from flowcore.configuration import config

    db = workdir / "runs.db"
    fresh = not db.exists()
    config.set_path("runs.store", str(db))
    config.set_path("runs.max_runs", 0)
    config.set_path("runs.retention_days", 0)
    from flowcore.runs import open_store
    from flowcore.runs.events import FlowRunStarted, FlowRunState, TaskRunState

    store = open_store()
    assert store is not None
    if fresh:
        tasks = [{"slug": f"t{i}-1", "name": f"t{i}", "mapped": False} for i in range(5)]
        edges = [
            {"upstream": f"t{i}-1", "downstream": f"t{i + 1}-1", "key": "x", "mapped": False}
            for i in range(4)
        ]
        start = datetime.now(timezone.utc) - timedelta(days=1)
        for n in range(10_000):
            run_id, when = str(uuid.uuid4()), start + timedelta(seconds=n)
            store.submit(
                FlowRunStarted(
                    run_id,
                    f"flow-{n % 7}",
                    when,
                    {"n": str(n)},
                    {"tasks": tasks, "edges": edges},
                    None,
                    "bench",
                    1,
                )
            )
            for i in range(5):
                store.submit(
                    TaskRunState(
                        run_id,
                        f"t{i}-1",
                        -1,
                        "Success",
                        None,
                        when.timestamp(),
                        started=when.timestamp(),
                    )
                )
            store.submit(
                FlowRunState(
                    run_id, "Success" if n % 10 else "Failed", None, when + timedelta(seconds=1)
                )
            )
        store.flush()
        from flowcore import Flow, task

        @task
        def inc(x: int) -> int:
            return x + 1

        with Flow("big map") as flow:
            inc.map(list(range(10_000)))
        state = flow.run()
        store.flush()
        (workdir / "big").write_text(str(state.flow_run_id))
    big = (workdir / "big").read_text()
    from starlette.testclient import TestClient

    from flowcore.ui import create_app

    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    print(f"{store.count_runs()} runs in {store.display}")
    for path in (
        "/",
        "/?page=150",
        "/?flow=flow-3",
        "/?state=Failed&page=10",
        "/api/runs",
        f"/runs/{big}",
        f"/api/runs/{big}",
        f"/runs/{big}/graph.svg",
    ):
        client.get(path)
        times = []
        for _ in range(15):
            start_time = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - start_time)
            assert response.status_code == 200, (path, response.status_code)
        print(
            f"{path[:50]:50s} median {statistics.median(times) * 1e3:7.1f} ms   min {min(times) * 1e3:7.1f} ms"
        )


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(tempfile.mkdtemp(prefix="flowcore-ui-bench-"))
    )
