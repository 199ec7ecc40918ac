"""``flowcore.ui``: the web UI that ``flowcore ui`` serves over the run store and caches.

One process, no build step: a Starlette application (:mod:`flowcore.ui.app`) rendering
Jinja2 templates (``templates/``) and a little plain JavaScript (``static/ui.js``) that
polls the JSON API to update a run's page while the run is in progress. Every page is
also JSON under ``/api/``. Modules:

* ``app``: the routes, rendering, error pages; ``create_app``.
* ``runs_pages`` / ``cache_pages``: what each page shows, built as plain data.
* ``views``: records -> dicts, and the formatting filters.
* ``security``: the host check, the token, cross-site request protection, headers.
* ``jobs``: ``flowcore resume`` subprocesses started by the Resume button.
* ``server``: binding the socket and running uvicorn (``flowcore ui``).

Needs the ``ui`` extra (``pip install 'flowcore[ui]'``): starlette, uvicorn, jinja2, and
graphviz for the run graph (with Graphviz's ``dot`` program).
"""

from __future__ import annotations

from flowcore.ui.app import create_app

__all__ = ["create_app"]
