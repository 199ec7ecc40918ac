"""``flowcore.utilities.notifications`` against real servers started here on 127.0.0.1:
an HTTP server standing in for Slack's webhook and Jira's REST API, and a small SMTP
server (plain, STARTTLS and implicit TLS with a certificate made for the test).

The flows in the Slack and callback tests were run on Prefect 1.4.1 against the same kind
of local server (``backend_info=False`` there, since Prefect 1 then asks Prefect Cloud for
a link): the same handlers fired, the same payload titles, texts and messages arrived.
"""

from __future__ import annotations

import base64
import datetime
import email
import email.policy
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flowcore import Flow, context, task
from flowcore.engine.state import Failed, Pending, Running, State, Success
from flowcore.utilities.notifications import (
    callback_factory,
    gmail_notifier,
    jira_notifier,
    slack_message_formatter,
    slack_notifier,
    snowflake_logger,
    snowflake_message_formatter,
)

# --- a local HTTP server ------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    server: _HTTPServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        self.server.received.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        status, reply = 200, b"ok"
        if self.path.startswith("/fail"):
            status = 500
        elif self.path.endswith("/rest/api/2/issue"):
            status, reply = 201, json.dumps({"id": "10001", "key": "TEST-1"}).encode()
        elif self.path.endswith("/assignee"):
            status, reply = 204, b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    received: list[dict[str, Any]]


@pytest.fixture
def http_server() -> Iterator[_HTTPServer]:
    server = _HTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _url(server: _HTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


# --- a local SMTP server ------------------------------------------------------------------


class _SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None
    implicit_tls = False
    logins: list[tuple[str, str]]
    mails: list[dict[str, Any]]
    used_tls: list[bool]


def _keyword_upper(arg: str) -> str:
    """``from:<a@b>`` as ``FROM:<a@b>``."""
    keyword, colon, rest = arg.partition(":")
    return keyword.upper() + colon + rest


class _SMTPSession(socketserver.BaseRequestHandler):
    """Just enough SMTP for smtplib: EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    server: _SMTPServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        tls = self.server.tls
        if self.server.implicit_tls and tls is not None:
            conn = tls.wrap_socket(conn, server_side=True)
        reader, secure = conn.makefile("rb"), self.server.implicit_tls
        envelope: dict[str, Any] = {"to": []}
        try:
            conn.sendall(b"220 localhost test SMTP\r\n")
            while raw := reader.readline():
                verb, _, arg = raw.decode().rstrip("\r\n").partition(" ")
                verb = verb.upper()
                if verb in ("EHLO", "HELO"):
                    offers = ["localhost", "AUTH PLAIN"]
                    if tls is not None and not secure:
                        offers.append("STARTTLS")
                    lines = [f"250-{o}" for o in offers[:-1]] + [f"250 {offers[-1]}"]
                    conn.sendall(("\r\n".join(lines) + "\r\n").encode())
                elif verb == "STARTTLS" and tls is not None:
                    conn.sendall(b"220 ready\r\n")
                    reader.close()
                    conn = tls.wrap_socket(conn, server_side=True)
                    reader, secure = conn.makefile("rb"), True
                elif verb == "AUTH":
                    _, user, password = base64.b64decode(arg.split()[1]).decode().split("\0")
                    self.server.logins.append((user, password))
                    conn.sendall(b"235 ok\r\n")
                elif verb == "MAIL":  # (its FROM: and RCPT's TO: are case-insensitive too:
                    # smtplib sends them in upper case before Python 3.13, lower case since)
                    envelope["from"] = _keyword_upper(arg)
                    conn.sendall(b"250 ok\r\n")
                elif verb == "RCPT":
                    envelope["to"].append(_keyword_upper(arg))
                    conn.sendall(b"250 ok\r\n")
                elif verb == "DATA":
                    conn.sendall(b"354 go on\r\n")
                    data = b"".join(iter(reader.readline, b".\r\n"))
                    envelope["message"] = email.message_from_bytes(
                        data, policy=email.policy.default
                    )
                    self.server.mails.append(envelope)
                    self.server.used_tls.append(secure)
                    envelope = {"to": []}
                    conn.sendall(b"250 queued\r\n")
                elif verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 ok\r\n")
        finally:
            reader.close()
            conn.close()


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(params=["INSECURE", "STARTTLS", "SSL"])
def smtp_server(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[_SMTPServer, str]]:
    smtp_type: str = request.param
    server = _SMTPServer(("127.0.0.1", 0), _SMTPSession)
    server.logins, server.mails, server.used_tls = [], [], []
    if smtp_type != "INSECURE":
        cert_file, key_file = _certificate(tmp_path)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert_file, key_file)
        server.tls, server.implicit_tls = tls, smtp_type == "SSL"
        # the client verifies the server as usual, trusting only the test's certificate
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server, smtp_type
    server.shutdown()
    server.server_close()
    thread.join()


# --- callback_factory ---------------------------------------------------------------------


def test_callback_factory_calls_back_on_matching_states_of_tasks_and_flows() -> None:
    """Prefect 1.4.1 (verified): ``fn(obj, new_state)`` runs when ``check(new_state) is
    True``; the handler returns the new state; it works on tasks and flows alike."""
    seen: list[tuple[str, str]] = []
    callback = callback_factory(
        lambda obj, state: seen.append((obj.name, type(state).__name__)), lambda s: s.is_finished()
    )

    @task(state_handlers=[callback])
    def ok() -> int:
        return 1

    @task
    def bad() -> None:
        raise ValueError("boom")

    with Flow("f", state_handlers=[callback]) as flow:
        ok()
        bad()
    flow.run()
    assert seen == [("ok", "Success"), ("f", "Failed")]


def test_callback_factory_needs_check_to_return_exactly_true() -> None:
    calls: list[State] = []
    handler = callback_factory(lambda obj, s: calls.append(s), lambda s: 1)  # type: ignore[arg-type,return-value]
    new = Success()
    assert handler(None, Running(), new) is new
    assert calls == []


# --- Slack --------------------------------------------------------------------------------


def test_slack_notifier_posts_the_states_it_is_configured_for(http_server: _HTTPServer) -> None:
    """Prefect 1.4.1 (verified): called with options only, the notifier is a state handler;
    ``ignore_states`` and ``only_states`` filter by isinstance; the URL comes from the local
    secret ``SLACK_WEBHOOK_URL``; one POST per notified state."""

    @task(state_handlers=[slack_notifier(ignore_states=[Running])])
    def ok() -> int:
        return 1

    @task(state_handlers=[slack_notifier(only_states=[Failed])])
    def bad() -> None:
        raise ValueError("boom")

    with Flow("slack") as flow:
        ok()
        bad()
    flow.run(context={"secrets": {"SLACK_WEBHOOK_URL": _url(http_server, "/hook")}})

    posts = sorted(http_server.received, key=lambda r: r["body"]["attachments"][0]["title"])
    assert [(p["method"], p["path"], p["headers"]["Content-Type"]) for p in posts] == [
        ("POST", "/hook", "application/json")
    ] * 2
    failed, success = (p["body"]["attachments"][0] for p in posts)
    assert (success["title"], success["text"]) == ("Success", "ok is now in a Success state")
    assert success["fields"][0] == {
        "title": "Message",
        "value": "Task run succeeded.",
        "short": False,
    }
    assert (failed["title"], failed["text"]) == ("Failed", "bad is now in a Failed state")
    assert failed["fields"][0]["value"] == "```ValueError('boom')```"
    assert failed["color"] == Failed.color
    assert {"title": "Flow run", "value": failed["fields"][1]["value"], "short": True} in failed[
        "fields"
    ]


def test_slack_notifier_takes_a_url_argument_and_a_named_secret(http_server: _HTTPServer) -> None:
    obj = SimpleNamespace(name="thing")
    new = Success("done")
    assert slack_notifier(obj, Running(), new, webhook_url=_url(http_server, "/direct")) is new
    with context(secrets={"MY_HOOK": _url(http_server, "/named")}):
        slack_notifier(webhook_secret="MY_HOOK", backend_info=False)(obj, Running(), new)
    assert [r["path"] for r in http_server.received] == ["/direct", "/named"]
    assert http_server.received[1]["body"] == slack_message_formatter(obj, new, backend_info=False)


def test_slack_notifier_failures_are_value_errors(http_server: _HTTPServer) -> None:
    """Prefect 1.4.1 (verified): a refused post raises ``ValueError("Slack notification for
    <obj> failed")``; a missing secret is a ValueError too (flowcore's names the setting)."""
    obj = SimpleNamespace(name="thing")
    with pytest.raises(
        ValueError, match="^Slack notification for .*thing.* failed: HTTP Error 500"
    ):
        slack_notifier(obj, Running(), Success(), webhook_url=_url(http_server, "/fail"))
    with context(secrets={}), pytest.raises(ValueError, match="SLACK_WEBHOOK_URL"):
        slack_notifier(obj, Running(), Success())
    # an ignored state needs no secret at all
    with context(secrets={}):
        assert slack_notifier(obj, Success(), Running(), ignore_states=[Running]).is_running()


def test_slack_notifier_options_can_be_bound_in_steps(http_server: _HTTPServer) -> None:
    bound = slack_notifier(only_states=[Success])(webhook_url=_url(http_server, "/steps"))
    obj = SimpleNamespace(name="thing")
    bound(obj, Pending(), Running())
    bound(obj, Running(), Success())
    assert [r["path"] for r in http_server.received] == ["/steps"]
    assert bound.__name__ == "slack_notifier"


# --- Gmail / SMTP -------------------------------------------------------------------------


def test_gmail_notifier_sends_through_smtp(smtp_server: tuple[_SMTPServer, str]) -> None:
    """The account comes from the local secrets EMAIL_USERNAME / EMAIL_PASSWORD and the mail
    goes to the username, as in Prefect 1.4.1 (which always used smtp.gmail.com:465 over
    SSL; the server arguments are flowcore's)."""
    server, smtp_type = smtp_server
    notifier = gmail_notifier(
        only_states=[Failed],
        smtp_server="127.0.0.1",
        smtp_port=server.server_address[1],
        smtp_type=smtp_type,
    )

    @task(state_handlers=[notifier])
    def bad() -> None:
        raise ValueError("boom <b>")

    with Flow("mail") as flow:
        bad()
    secrets = {"EMAIL_USERNAME": "me@example.com", "EMAIL_PASSWORD": "hunter2"}
    flow.run(context={"secrets": secrets})

    assert server.logins == [("me@example.com", "hunter2")]
    assert server.used_tls == [smtp_type != "INSECURE"]
    (mail,) = server.mails
    assert mail["from"].startswith("FROM:<me@example.com>")
    assert mail["to"] == ["TO:<me@example.com>"]
    message: EmailMessage = mail["message"]
    assert message["Subject"] == "flowcore state change notification for bad"
    assert (message["From"], message["To"]) == ("me@example.com", "me@example.com")
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    assert "bad is now in a Failed state" in plain.get_content()
    assert "ValueError('boom <b>')" in plain.get_content()
    assert "boom &lt;b&gt;" in rich.get_content()


def test_gmail_notifier_recipient_and_errors(smtp_server: tuple[_SMTPServer, str]) -> None:
    server, smtp_type = smtp_server
    port = server.server_address[1]
    obj = SimpleNamespace(name="thing")
    with context(secrets={"EMAIL_USERNAME": "me@example.com", "EMAIL_PASSWORD": "pw"}):
        gmail_notifier(
            obj,
            Running(),
            Success(),
            email_to="ops@example.com",
            smtp_server="127.0.0.1",
            smtp_port=port,
            smtp_type=smtp_type,
        )
        with pytest.raises(ValueError, match="smtp_type must be one of"):
            gmail_notifier(obj, Running(), Success(), smtp_type="TLS?")
    assert server.mails[0]["to"] == ["TO:<ops@example.com>"]
    with context(secrets={}), pytest.raises(ValueError, match="EMAIL_USERNAME"):
        gmail_notifier(obj, Running(), Success(), smtp_server="127.0.0.1", smtp_port=port)


def test_gmail_notifier_delivery_failure_is_a_value_error() -> None:
    """Prefect 1.4.1 raises ``ValueError("Email notification for <obj> failed")``."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    obj = SimpleNamespace(name="thing")
    with (
        context(secrets={"EMAIL_USERNAME": "me@example.com", "EMAIL_PASSWORD": "pw"}),
        pytest.raises(ValueError, match="^Email notification for .*thing.* failed"),
    ):
        gmail_notifier(
            obj, Running(), Success(), smtp_server="127.0.0.1", smtp_port=port, smtp_type="INSECURE"
        )


# --- Jira ---------------------------------------------------------------------------------


def test_jira_notifier_creates_and_assigns_an_issue(http_server: _HTTPServer) -> None:
    """Prefect 1.4.1's arguments and secret layout (``JIRASECRETS`` with JIRAUSER,
    JIRATOKEN, JIRASERVER); flowcore talks to Jira's REST API v2 directly."""
    secrets = {
        "JIRASECRETS": {"JIRAUSER": "bot", "JIRATOKEN": "t0k", "JIRASERVER": _url(http_server, "")}
    }
    obj = SimpleNamespace(name="nightly")
    with context(secrets=secrets):
        jira_notifier(
            obj,
            Running(),
            Failed("x"),
            options={"project": "TEST", "issuetype": "Task"},
            assignee="ann",
        )
    create, assign = http_server.received
    assert (create["method"], create["path"]) == ("POST", "/rest/api/2/issue")
    assert create["headers"]["Authorization"] == "Basic " + base64.b64encode(b"bot:t0k").decode()
    fields = create["body"]["fields"]
    assert fields["project"] == {"key": "TEST"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"].startswith("Message from flowcore: nightly entered a Failed state at ")
    assert (assign["method"], assign["path"], assign["body"]) == (
        "PUT",
        "/rest/api/2/issue/TEST-1/assignee",
        {"name": "ann"},
    )


def test_jira_notifier_server_url_argument_and_failure(http_server: _HTTPServer) -> None:
    secrets = {"JIRASECRETS": {"JIRAUSER": "bot", "JIRATOKEN": "t0k"}}
    obj = SimpleNamespace(name="nightly")
    with context(secrets=secrets):
        jira_notifier(obj, Running(), Failed(), server_URL=_url(http_server, "/"), assignee="")
        with pytest.raises(ValueError, match="^Creating Jira Issue for .*nightly.* failed"):
            jira_notifier(obj, Running(), Failed(), server_URL=_url(http_server, "/fail"))
    assert [r["method"] for r in http_server.received] == ["POST", "POST"]


# --- Snowflake ----------------------------------------------------------------------------


def test_snowflake_message_formatter_and_test_env(capsys: pytest.CaptureFixture[str]) -> None:
    """Prefect 1.4.1's row keys; with ``test_env`` the INSERT is printed, not run."""
    obj = SimpleNamespace(name="load")
    with context(
        flow_run_id="run-1", flow_name="etl", secrets={"LOG_TABLE_NAME_FULL": "DB.SCH.LOG"}
    ):
        assert snowflake_message_formatter(obj, Failed("it's bad")) == {
            "flow_id": "run-1",
            "flow_name": "etl",
            "task_name": "load",
            "state": "Failed",
            "message": [{"value": "it's bad"}],
        }
        snowflake_logger(obj, Running(), Failed("it's bad"), test_env=True)
    printed = capsys.readouterr().out
    assert printed.startswith(
        "INSERT INTO DB.SCH.LOG (FLOW_ID, FLOW_NAME, TASK_NAME, STATE, MESSAGE, INGESTED_AT)"
    )
    assert "'run-1', 'etl', 'load', 'Failed', 'it''s bad', CURRENT_TIMESTAMP());" in printed


def test_snowflake_logger_checks_the_table_name() -> None:
    obj = SimpleNamespace(name="load")
    with (
        context(secrets={"LOG_TABLE_NAME_FULL": "DB.SCH.LOG; DROP TABLE X"}),
        pytest.raises(ValueError, match="DB.SCHEMA.TABLE"),
    ):
        snowflake_logger(obj, Running(), Failed(), test_env=True)


def test_configured_notifiers_pickle_for_process_executors() -> None:
    import pickle

    import cloudpickle

    handler = slack_notifier(only_states=[Failed], webhook_url="http://127.0.0.1:1/hook")
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(handler))
        assert copy.__name__ == "slack_notifier"
        assert copy(SimpleNamespace(name="t"), Pending(), Running()).is_running()
