"""Resume jobs: ``flowcore resume RUN_ID`` in a subprocess on the UI's machine.

The Resume button POSTs to the UI, which starts :class:`ResumeJob`: the ``flowcore``
command of this interpreter (``python -m flowcore resume RUN_ID --no-progress``), with
the UI's run store as ``FLOWCORE__RUNS__STORE`` so the new run is recorded where the UI
reads. The command line is made from the stored run id only: nothing a request sends
reaches it. Its output goes to an anonymous temporary file (read back for the job's
page); a thread waits for the process, so no zombie is left.

The new run is found in the store: the newest run of the same flow whose
``resumed_from`` is the resumed run and which started after the job did.
:class:`Jobs` keeps the jobs of one server (the newest ``MAX_JOBS``) and starts at most
one at a time per run: pressing Resume twice shows the running job again.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from flowcore.runs.store import RunInfo, RunStore

__all__ = ["Jobs", "ResumeJob"]

MAX_JOBS = 100
OUTPUT_TAIL = 8_000  # characters of a job's output kept on its page
_SLACK = timedelta(seconds=2)  # clock rounding between the job's start and the run's


class ResumeJob:
    """One ``flowcore resume`` subprocess."""

    def __init__(self, store: RunStore, run: RunInfo) -> None:
        self.id = secrets.token_hex(8)
        self.run_id = run.run_id
        self.flow_name = run.flow_name
        self.started = datetime.now(timezone.utc)
        self.new_run_id: str | None = None
        self._store = store
        self._output: IO[bytes] = tempfile.TemporaryFile()
        env = {**os.environ, "FLOWCORE__RUNS__STORE": store.url}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "flowcore", "resume", run.run_id, "--no-progress"],
            stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
        self._final: str | None = None
        self._lock = threading.Lock()
        threading.Thread(
            target=self._wait, name=f"flowcore-ui-resume-{self.id}", daemon=True
        ).start()

    def _wait(self) -> None:
        """Reap the process, then keep the tail of its output and close the file."""
        self._process.wait()
        with self._lock:
            self._final = self._tail()
            self._output.close()

    @property
    def returncode(self) -> int | None:
        """The exit status (0: the resumed run succeeded), None while it runs."""
        return self._process.poll()

    def output(self) -> str:
        """The last ``OUTPUT_TAIL`` characters the command printed."""
        with self._lock:
            return self._final if self._final is not None else self._tail()

    def _tail(self) -> str:
        size = os.fstat(self._output.fileno()).st_size
        start = max(0, size - OUTPUT_TAIL)
        return os.pread(self._output.fileno(), size - start, start).decode("utf-8", "replace")

    def find_new_run(self) -> str | None:
        """The run this job started, once the store has it."""
        if self.new_run_id is None:
            since = self.started - _SLACK
            for run in self._store.resumes_of(self.run_id):
                if run.started >= since:
                    self.new_run_id = run.run_id
                    break
        return self.new_run_id

    def to_dict(self) -> dict[str, Any]:
        """The job's page as JSON."""
        code = self.returncode
        new = self.find_new_run()
        return {
            "job": self.id,
            "run_id": self.run_id,
            "flow": self.flow_name,
            "started": self.started.isoformat(),
            "status": "running" if code is None else "finished",
            "returncode": code,
            "succeeded": code == 0,
            "new_run_id": new,
            "output": self.output(),
        }

    def close(self) -> None:
        """Release the output file (the process goes on if it still runs)."""
        with self._lock:
            if self._final is None:
                self._final = ""
                self._output.close()


class Jobs:
    """The resume jobs of one server."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, ResumeJob] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, store: RunStore, run: RunInfo) -> ResumeJob:
        """A new job resuming ``run``, or the one still resuming it."""
        with self._lock:
            for job in self._jobs.values():
                if job.run_id == run.run_id and job.returncode is None:
                    return job
            job = ResumeJob(store, run)
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)[1].close()
            return job

    def get(self, job_id: str) -> ResumeJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def for_run(self, run_id: str) -> list[ResumeJob]:
        """The jobs that resumed ``run_id``, newest first."""
        with self._lock:
            return [job for job in reversed(self._jobs.values()) if job.run_id == run_id]
