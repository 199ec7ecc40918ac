"""``pid_alive``: this process, a running child, a zombie and a reaped child."""

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
