"""Serving the UI: bind the socket, say where, run uvicorn until interrupted.

The socket is bound here, before uvicorn starts, so that ``--port 0`` (any free port)
can be announced: the first line ``flowcore ui`` prints on stdout is the URL to open
(with ``?token=...`` when a token is set), then it serves until Ctrl-C. uvicorn's access
log is off (it would print that URL's token, and every poll of a live page).
"""

from __future__ import annotations

import socket
import sys
import threading
import webbrowser
from urllib.parse import quote

from starlette.applications import Starlette

__all__ = ["bind", "serve", "url_for"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (IPv4 or IPv6; port 0: any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_for(sock: socket.socket, host: str, token: str | None) -> str:
    """The URL of the UI served on ``sock`` (the token URL-encoded).

    >>> import socket as s
    >>> sock = bind("127.0.0.1", 0)
    >>> url_for(sock, "127.0.0.1", None).startswith("http://127.0.0.1:")
    True
    >>> sock.close()
    """
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("localhost" if host == "::" else host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={quote(token, safe='')}" if token else "")


def serve(app: Starlette, sock: socket.socket, url: str, open_browser: bool = False) -> None:
    """Run ``app`` on ``sock`` until interrupted; print ``url`` first (and open it)."""
    import uvicorn

    print(url, flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        sys.stdout.flush()
