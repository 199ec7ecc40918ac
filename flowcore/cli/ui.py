"""``flowcore ui``: serve the web UI over the run store and the cache store.

::

    flowcore ui [--store URL] [--cache-store STORE] [--host 127.0.0.1] [--port 4200]
                [--token T] [--open]

It binds 127.0.0.1 unless told otherwise; any other ``--host`` (one that other machines
can reach) needs a token, from ``--token`` or ``FLOWCORE__UI__TOKEN`` (config
``ui.token``), that every request must carry (:mod:`flowcore.ui.security`). The first
line printed is the URL to open. Needs the ``ui`` extra.
"""

from __future__ import annotations

import os

import click

from flowcore.cli import CliError

__all__ = ["ui"]

_UI_MODULES = (
    "starlette",
    "uvicorn",
    "jinja2",
)  # what the ui extra installs (their own needs come along)


@click.command("ui")
@click.option(
    "--store", help="The run store: a path or SQLAlchemy URL (default: config runs.store)."
)
@click.option(
    "--cache-store",
    metavar="STORE",
    help="The cache store the Caches page manages (default: config caching.store, else <home_dir>/storage).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; other than loopback, a token is required.",
)
@click.option(
    "--port",
    default=4200,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The port (0: any free port).",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="A token every request must carry (default: FLOWCORE__UI__TOKEN).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in a web browser.")
def ui(
    store: str | None,
    cache_store: str | None,
    host: str,
    port: int,
    token: str | None,
    open_browser: bool,
) -> None:
    """Serve the web UI: runs, their graphs and logs, resume, caches."""
    from flowcore.cli.runs import naming_store_source, open_cli_store, store_source
    from flowcore.utilities._optional import require_optional

    require_optional("flowcore ui", *_UI_MODULES)
    from flowcore.ui import create_app
    from flowcore.ui.security import is_loopback
    from flowcore.ui.server import bind, serve, url_for

    token = token or _configured_token()
    loopback = is_loopback(host)
    if not loopback and not token:
        raise CliError(
            f"--host {host} lets other machines reach the UI: give a token with --token TOKEN "
            "(or FLOWCORE__UI__TOKEN), which every request will have to carry"
        )
    with naming_store_source(store):
        opened = open_cli_store(store)
    app = create_app(
        opened,
        cache_store=cache_store,
        token=token,
        loopback_only=loopback,
        store_source=store_source(store),
    )
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise CliError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc} (try another --port)"
        ) from None
    serve(app, sock, url_for(sock, host, token), open_browser)


def _configured_token() -> str | None:
    value = os.environ.get("FLOWCORE__UI__TOKEN")
    if value is None:
        from flowcore.configuration import config

        found = config.get_path("ui.token")
        value = None if found is None else str(found)
    return value or None
