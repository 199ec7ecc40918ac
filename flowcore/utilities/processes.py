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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is alive: this process is; a pid that does
    not exist, or a zombie (killed, and not reaped yet by its parent), is not; a process
    of another user, or one we cannot tell about, counts as alive."""
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
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): kill(0) is all we know
        return True
