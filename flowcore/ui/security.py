"""Who may use the UI, and how state-changing requests are protected.

:class:`Guard` is an ASGI middleware in front of every request. In order:

1. **Host.** A UI bound to a loopback address answers only requests whose ``Host`` names
   a loopback address (``127.0.0.1``, ``localhost``, ``[::1]``), so a web page cannot reach
   it through DNS rebinding (a name of the attacker's that resolves to 127.0.0.1).
2. **Token.** With a token (required for any other ``--host``), every request carries
   it: an ``Authorization: Bearer TOKEN`` header (scripts), or the session cookie. The
   cookie is set by opening any page once with ``?token=TOKEN`` (the URL ``flowcore ui``
   prints): the answer sets the cookie (HttpOnly, SameSite=Strict; its value is an HMAC of
   the token, not the token) and redirects to the same URL without the token, so it stays
   out of the history and of ``Referer`` headers. Anything else gets 401.
3. **Cross-site requests.** Only GET and HEAD read; everything else must be a POST that
   comes from the UI's own pages: a ``Sec-Fetch-Site`` other than ``same-origin``/``none``
   or an ``Origin`` other than the request's own is refused (403). :func:`read_form`
   then checks the form's (or the ``X-CSRF-Token`` header's) CSRF token, a random value
   per server that only the UI's pages carry. A request authenticated by its
   ``Authorization`` header (which browsers never add by themselves) needs no CSRF token.
4. **Headers.** Every answer says ``Content-Security-Policy`` (scripts from the UI's own
   static files only, no inline script, no frames), ``X-Content-Type-Options: nosniff``,
   ``X-Frame-Options: DENY`` and ``Referrer-Policy: same-origin`` (not ``no-referrer``: with it
   browsers send ``Origin: null`` on the UI's own form posts).

Text from runs and caches (task names, messages, log lines) is never trusted: templates
escape it and the JavaScript writes it with ``textContent``; the policy above is the second
line of defence.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

__all__ = [
    "COOKIE",
    "CSP",
    "LOOPBACK_HOSTS",
    "Guard",
    "is_loopback",
    "new_csrf_token",
    "read_form",
    "session_value",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "flowcore_ui_session"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_READS = ("GET", "HEAD")
MAX_FORM = 64 * 1024  # bytes: the UI's forms are a few fields


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to bind or a Host header's name) is this
    machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    >>> is_loopback("127.0.0.2"), is_loopback("example.org")
    (True, False)
    """
    import ipaddress

    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def session_value(token: str) -> str:
    """The session cookie's value for ``token``: an HMAC of it, so the cookie does not
    hold the token itself."""
    return hmac.new(token.encode(), b"flowcore-ui-session", hashlib.sha256).hexdigest()


def _host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port.

    >>> _host_name("127.0.0.1:4200"), _host_name("[::1]:4200"), _host_name("localhost")
    ('127.0.0.1', '::1', 'localhost')
    """
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """The middleware of the module docstring.

    Args:
        app: the application behind it.
        token: the token every request must carry (None: no token).
        loopback_only: answer only requests whose ``Host`` is a loopback name.
        csrf: the CSRF token the pages carry (:func:`read_form` checks it).
    """

    def __init__(self, app: ASGIApp, token: str | None, loopback_only: bool, csrf: str) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only
        self.csrf = csrf
        self.session = None if token is None else session_value(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scope.setdefault("state", {})["bearer"] = False
        refusal = self._refusal(scope, headers)
        if refusal is None and self.token is not None:
            refusal = self._login(scope, headers)
        if refusal is None and scope["method"] not in _READS:
            refusal = self._cross_site(scope, headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: Headers) -> Response | None:
        if self.loopback_only and not is_loopback(_host_name(headers.get("host", ""))):
            return PlainTextResponse(
                "This flowcore UI answers on 127.0.0.1 (or localhost) only.", 400
            )
        return None

    def _login(self, scope: Scope, headers: Headers) -> Response | None:
        """None when the request carries the token; else the answer: a redirect that sets
        the cookie (``?token=``), or 401."""
        assert self.token is not None and self.session is not None
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer ") and hmac.compare_digest(
            authorization[7:].strip().encode(), self.token.encode()
        ):
            scope["state"]["bearer"] = True
            return None
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        if cookie is not None and hmac.compare_digest(cookie.encode(), self.session.encode()):
            return None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [value for name, value in query if name == "token"]
        if (
            given
            and scope["method"] in _READS
            and hmac.compare_digest(given[-1].encode(), self.token.encode())
        ):
            rest = urlencode([(name, value) for name, value in query if name != "token"])
            here = "/" + scope["path"].lstrip("/")  # never "//host": that would leave the UI
            response = RedirectResponse(here + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(COOKIE, self.session, httponly=True, samesite="strict", path="/")
            return response
        message = (
            "This flowcore UI needs its token: open the URL `flowcore ui` printed (it ends "
            "with ?token=...), or send the header 'Authorization: Bearer TOKEN'."
        )
        if scope["path"].startswith("/api/"):
            return JSONResponse({"error": message}, 401)
        return PlainTextResponse(message, 401)

    def _cross_site(self, scope: Scope, headers: Headers) -> Response | None:
        if scope["method"] != "POST":
            return PlainTextResponse(
                "Method not allowed: the UI changes things with POST only.", 405
            )
        if scope["state"]["bearer"]:
            return None
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return PlainTextResponse(f"Cross-site request refused (Sec-Fetch-Site: {site}).", 403)
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
        if origin is not None and origin != own:
            return PlainTextResponse(
                "Cross-site request refused (its Origin is another site).", 403
            )
        return None


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a POSTed form (``application/x-www-form-urlencoded``), once its CSRF
    token is checked (module docstring, point 3).

    Raises:
        HTTPException: 413 for a body over 64 KiB, 415 for another content type, 403 for
            a missing or wrong CSRF token.
    """
    kind = request.headers.get("content-type", "application/x-www-form-urlencoded")
    if kind.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Send the form as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise HTTPException(413, "The form is too large.")
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if not request.scope.get("state", {}).get("bearer"):
        given = fields.get("csrf_token") or request.headers.get("x-csrf-token") or ""
        expected: str = request.app.state.csrf
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(
                403,
                "This form is out of date or did not come from this UI: reload the page and try again.",
            )
    return fields


def new_csrf_token() -> str:
    """A random CSRF token for one server."""
    return secrets.token_urlsafe(32)


def _cookie(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header.

    >>> _cookie("a=1; flowcore_ui_session=abc", "flowcore_ui_session"), _cookie("", "x")
    ('abc', None)
    """
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None
