"""Task code in a script (pickled by value) that uses ``from flowcore import context`` runs
on process-based executors and sees its own run context there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    from flowcore import Flow, context, task
    from flowcore.executors import LocalDaskExecutor

    @task
    def where(x):
        return (x, context.get("map_index"), context.get("task_full_name"), context.get("flow_name"))

    if __name__ == "__main__":
        with Flow("context-in-processes") as flow:
            out = where.map([10, 20])
        state = flow.run(executor=LocalDaskExecutor("processes"))
        assert state.is_successful(), state
        print("RESULT", state.result[out].result)
""")


@pytest.mark.slow
def test_context_closure_runs_in_worker_processes(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "RESULT [(10, 0, 'where[0]', 'context-in-processes'), (20, 1, 'where[1]', 'context-in-processes')]"
        in done.stdout
    )
