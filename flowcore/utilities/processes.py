"""Whether a process is alive, and this host's name, for the owners of locks and of flow
runs."""

from __future__ import annotations

import os

__all__ = ["host_name", "pid_alive"]


def host_name() -> str:
    """This machine's host name, as ``socket.gethostname()`` gives it (on POSIX both are
    the kernel's node name; this does not import :mod:`socket`, a few milliseconds on a
    run's first path)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


def pid_alive(pid: int, since: float | None = None) -> bool:
    """Whether process ``pid`` of this machine is alive: this process is; a pid that does
    not exist, or a zombie (killed, and not reaped yet by its parent), is not; a process
    of another user, or one we cannot tell about, counts as alive.

    ``since`` (epoch seconds): the process looked for was running then, so a process with
    this pid that started later is another one (the pid was reused after the first ended)
    and does not count. Where the start time cannot be read (no ``/proc``), it counts."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):  # no /proc (macOS): kill(0) is all we know
        return True
    if not fields or fields[0] == "Z":
        return False
    if since is None:
        return True
    started = _start_time(fields)
    return started is None or started <= since + _START_TOLERANCE


# A process's start time is known to a clock tick, the boot time to a second.
_START_TOLERANCE = 1.0


def _start_time(fields: list[str]) -> float | None:
    """The epoch seconds a process started, from the fields of its ``/proc/PID/stat``
    after the command name (``starttime``, the 22nd field, in clock ticks since boot);
    None when they cannot be read."""
    try:
        ticks = int(fields[19])
        with open("/proc/stat", encoding="utf-8") as stat:
            boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
