"""``pid_alive``: this process, a running child, a zombie, a reaped child, and a pid taken
by a process that started after the one looked for."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from flowcore.utilities.processes import pid_alive


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0) and not pid_alive(-1)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
    finally:
        child.kill()
    for _ in range(200):  # killed but not reaped: a zombie, dead for our purpose
        if not pid_alive(child.pid):
            break
        time.sleep(0.01)
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)


def test_a_process_that_started_after_since_is_not_the_one_looked_for() -> None:
    before = time.time() - 3600
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid, since=time.time() + 5)  # running then: it counts
        assert not pid_alive(child.pid, since=before)  # started after: another process
        assert pid_alive(os.getpid(), since=before)  # this process always counts
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid, since=time.time())
