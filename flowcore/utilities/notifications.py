"""State handlers that call back, post to Slack or Jira, send an email, or log to Snowflake.

Each notifier is a state handler ``fn(tracked_obj, old_state, new_state, ignore_states=None,
only_states=None, ...) -> new_state`` (Prefect 1's names and arguments; the docstrings below
list only the arguments after these). ``tracked_obj`` is the task or flow the handler is
attached to; the new state is returned unchanged. Called with keyword options only, a
notifier returns a handler with those options bound, so it can be configured where it is
attached::

    @task(state_handlers=[slack_notifier(only_states=[Failed])])

A notifier first checks ``ignore_states`` / ``only_states`` (state classes, matched with
``isinstance``); only then does it look up where to send, so an ignored state never needs
credentials. Destinations and credentials come from the arguments or, as in Prefect 1,
from the run's local secrets (``context.secrets``, filled from the config section
``context.secrets``, e.g. ``FLOWCORE__CONTEXT__SECRETS__SLACK_WEBHOOK_URL=https://...``).
HTTP goes through :mod:`urllib.request` and email through :mod:`smtplib`; a failed delivery
raises ``ValueError`` naming the task or flow, with the cause chained.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import re
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from flowcore.utilities.context import context

if TYPE_CHECKING:
    from flowcore.engine.state import State

__all__ = [
    "callback_factory",
    "gmail_notifier",
    "jira_notifier",
    "slack_message_formatter",
    "slack_notifier",
    "snowflake_logger",
    "snowflake_message_formatter",
]

_HTTP_TIMEOUT = 30.0
_SMTP_TYPES = ("SSL", "STARTTLS", "INSECURE")


def callback_factory(
    fn: Callable[[Any, State], Any], check: Callable[[State], bool]
) -> Callable[[Any, State, State], State]:
    """A state handler that calls ``fn(task_or_flow, new_state)`` whenever
    ``check(new_state) is True``, and always returns ``new_state`` unchanged.

    >>> from flowcore.engine.state import Failed, Success
    >>> seen = []
    >>> handler = callback_factory(lambda obj, s: seen.append(s), lambda s: s.is_failed())
    >>> handler("task", Success(), Failed("boom")), seen
    (<Failed: "boom">, [<Failed: "boom">])
    >>> handler("task", Failed(), Success()), len(seen)
    (<Success>, 1)
    """

    def state_handler(obj: Any, old_state: State, new_state: State) -> State:
        if check(new_state) is True:
            fn(obj, new_state)
        return new_state

    return state_handler


class _Notifier:
    """A notifier with some arguments bound: runs once it has the three handler
    arguments, otherwise returns a new ``_Notifier`` with more arguments bound."""

    def __init__(self, fn: Callable[..., State], *args: Any, **kwargs: Any) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        all_args = self._args + args
        all_kwargs = {**self._kwargs, **kwargs}
        if len(all_args) >= 3:
            return self._fn(*all_args, **all_kwargs)
        return _Notifier(self._fn, *all_args, **all_kwargs)

    def __repr__(self) -> str:
        return f"<notifier {self.__name__} {self._kwargs!r}>"


def _skipped(
    new_state: State, ignore_states: Sequence[type] | None, only_states: Sequence[type] | None
) -> bool:
    if any(isinstance(new_state, ignored) for ignored in ignore_states or ()):
        return True
    return bool(only_states) and not any(
        isinstance(new_state, wanted) for wanted in only_states or ()
    )


def _secret(name: str, needed_by: str) -> Any:
    secrets = context.get("secrets") or {}
    if name not in secrets:
        raise ValueError(
            f'{needed_by} needs the local secret "{name}": set it in the config section '
            f"context.secrets (env FLOWCORE__CONTEXT__SECRETS__{name}) or pass it with "
            f'flow.run(context={{"secrets": {{"{name}": ...}}}})'
        )
    return secrets[name]


def _message_text(state: State) -> str | None:
    if isinstance(state.result, Exception):
        return repr(state.result)
    return None if state.message is None else str(state.message)


def _send(
    url: str,
    payload: Any,
    *,
    method: str = "POST",
    auth: tuple[str, str] | None = None,
    proxies: dict[str, str] | None = None,
) -> bytes:
    """Send ``payload`` as JSON; return the response body (urllib raises on HTTP errors)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method=method)
    request.add_header("Content-Type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    handlers = [] if proxies is None else [urllib.request.ProxyHandler(proxies)]
    with urllib.request.build_opener(*handlers).open(request, timeout=_HTTP_TIMEOUT) as response:
        body: bytes = response.read()
    return body


def slack_message_formatter(
    tracked_obj: Any, state: State, backend_info: bool = True
) -> dict[str, Any]:
    """The Slack webhook payload (one attachment) for ``tracked_obj`` entering ``state``.

    With ``backend_info``, the flow run id (``flowcore runs show <id>``) is added as a field
    when a flow run is in progress; Prefect 1 linked to its Cloud UI there.
    """
    fields: list[dict[str, Any]] = []
    text = _message_text(state)
    if text is not None:
        shown = f"```{text}```" if isinstance(state.result, Exception) else text
        fields.append({"title": "Message", "value": shown, "short": False})
    flow_run_id = context.get("flow_run_id")
    if backend_info and flow_run_id:
        fields.append({"title": "Flow run", "value": str(flow_run_id), "short": True})
    state_name = type(state).__name__
    attachment = {
        "fallback": "State change notification",
        "color": state.color,
        "author_name": "flowcore",
        "title": state_name,
        "fields": fields,
        "text": f"{tracked_obj.name} is now in a {state_name} state",
        "footer": "flowcore notification",
    }
    return {"attachments": [attachment]}


def _slack_notifier(
    tracked_obj: Any,
    old_state: State,
    new_state: State,
    ignore_states: Sequence[type] | None = None,
    only_states: Sequence[type] | None = None,
    webhook_secret: str | None = None,
    backend_info: bool = True,
    proxies: dict[str, str] | None = None,
    webhook_url: str | None = None,
) -> State:
    """Post a message to a Slack incoming webhook when the state changes.

    Args:
        webhook_secret: the local secret holding the webhook URL (default
            ``"SLACK_WEBHOOK_URL"``).
        backend_info: add the flow run id to the message.
        proxies: ``{"http": ..., "https": ...}`` proxies for the request.
        webhook_url: the webhook URL itself (flowcore's addition; wins over the secret).

    Raises:
        ValueError: the secret is missing, or Slack (or the network) refused the message.
    """
    if _skipped(new_state, ignore_states, only_states):
        return new_state
    url = webhook_url or _secret(webhook_secret or "SLACK_WEBHOOK_URL", "slack_notifier")
    try:
        _send(url, slack_message_formatter(tracked_obj, new_state, backend_info), proxies=proxies)
    except (urllib.error.URLError, OSError) as exc:
        raise ValueError(f"Slack notification for {tracked_obj} failed: {exc}") from exc
    return new_state


_slack_notifier.__name__ = "slack_notifier"
slack_notifier = _Notifier(_slack_notifier)


def _email_message(tracked_obj: Any, state: State, sender: str, recipient: str) -> EmailMessage:
    state_name = type(state).__name__
    text = _message_text(state)
    plain = f"{tracked_obj.name} is now in a {state_name} state\n\nMessage: {text}\n"
    shown = html.escape(str(text))
    rich = (
        f'<html><body><p style="border-left: 2px solid {state.color}; padding-left: 6px;">'
        f"<code>{html.escape(str(tracked_obj.name))}</code> is now in a "
        f'<b style="color: {state.color}">{state_name}</b> state<br><br>'
        f"Message: <pre>{shown}</pre></p></body></html>"
    )
    message = EmailMessage()
    message["Subject"] = f"flowcore state change notification for {tracked_obj.name}"
    message["From"] = sender
    message["To"] = recipient
    message.set_content(plain)
    message.add_alternative(rich, subtype="html")
    return message


def _smtp_connection(server: str, port: int, smtp_type: str) -> smtplib.SMTP:
    if smtp_type not in _SMTP_TYPES:
        raise ValueError(f"smtp_type must be one of {', '.join(_SMTP_TYPES)}, not {smtp_type!r}")
    if smtp_type == "SSL":
        return smtplib.SMTP_SSL(server, port, context=ssl.create_default_context())
    connection = smtplib.SMTP(server, port)
    if smtp_type == "STARTTLS":
        connection.starttls(context=ssl.create_default_context())
    return connection


def _gmail_notifier(
    tracked_obj: Any,
    old_state: State,
    new_state: State,
    ignore_states: Sequence[type] | None = None,
    only_states: Sequence[type] | None = None,
    email_to: str | None = None,
    smtp_server: str = "smtp.gmail.com",
    smtp_port: int = 465,
    smtp_type: str = "SSL",
) -> State:
    """Email a state change, by default through Gmail's SMTP server over SSL.

    The account is read from the local secrets ``EMAIL_USERNAME`` and ``EMAIL_PASSWORD``, as
    in Prefect 1; the username is the sender and, unless ``email_to`` is given, the
    recipient.

    Args:
        email_to: the recipient (default: the username).
        smtp_server: the SMTP host (flowcore's addition, like the two below).
        smtp_port: its port.
        smtp_type: ``"SSL"`` (implicit TLS), ``"STARTTLS"`` or ``"INSECURE"`` (plain text,
            for a relay on a trusted network).

    Raises:
        ValueError: a secret is missing, or the server refused the login or the message.
    """
    if _skipped(new_state, ignore_states, only_states):
        return new_state
    username = str(_secret("EMAIL_USERNAME", "gmail_notifier"))
    password = str(_secret("EMAIL_PASSWORD", "gmail_notifier"))
    recipient = email_to or username
    message = _email_message(tracked_obj, new_state, username, recipient)
    try:
        with _smtp_connection(smtp_server, smtp_port, smtp_type) as connection:
            connection.login(username, password)
            connection.send_message(message, from_addr=username, to_addrs=[recipient])
    except (smtplib.SMTPException, OSError) as exc:
        raise ValueError(f"Email notification for {tracked_obj} failed: {exc}") from exc
    return new_state


_gmail_notifier.__name__ = "gmail_notifier"
gmail_notifier = _Notifier(_gmail_notifier)


def _jira_fields(options: dict[str, Any] | None, tracked_obj: Any, state: State) -> dict[str, Any]:
    fields = dict(options or {})
    if isinstance(fields.get("project"), (str, int)):
        fields["project"] = {"key": str(fields["project"])}
    if isinstance(fields.get("issuetype"), str):
        fields["issuetype"] = {"name": fields["issuetype"]}
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    fields["summary"] = (
        f"Message from flowcore: {tracked_obj.name} entered a {type(state).__name__} state at {now}"
    )
    return fields


def _jira_notifier(
    tracked_obj: Any,
    old_state: State,
    new_state: State,
    ignore_states: Sequence[type] | None = None,
    only_states: Sequence[type] | None = None,
    server_URL: str | None = None,  # noqa: N803 - Prefect 1's argument name
    options: dict[str, Any] | None = None,
    assignee: str = "-1",
) -> State:
    """Open a Jira issue for a state change (Jira's REST API v2), then assign it.

    Credentials come from the local secret ``JIRASECRETS``: a mapping with ``JIRAUSER``,
    ``JIRATOKEN`` and (unless ``server_URL`` is given) ``JIRASERVER``, as in Prefect 1.

    Args:
        server_URL: the Jira site, e.g. ``"https://example.atlassian.net"``.
        options: the issue's fields; ``project`` (a key) and ``issuetype`` (a name, or
            ``{"id": ...}``) are required by Jira. The summary is filled in.
        assignee: the user name to assign the issue to; ``"-1"`` lets Jira choose, and an
            empty value leaves it unassigned.

    Raises:
        ValueError: the secret is missing, or Jira refused the issue or the assignment.
    """
    if _skipped(new_state, ignore_states, only_states):
        return new_state
    credentials = _secret("JIRASECRETS", "jira_notifier")
    server = str(server_URL or credentials["JIRASERVER"]).rstrip("/")
    auth = (str(credentials["JIRAUSER"]), str(credentials["JIRATOKEN"]))
    fields = _jira_fields(options, tracked_obj, new_state)
    try:
        created = json.loads(_send(f"{server}/rest/api/2/issue", {"fields": fields}, auth=auth))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ValueError(f"Creating Jira Issue for {tracked_obj} failed: {exc}") from exc
    if assignee:
        url = f"{server}/rest/api/2/issue/{created['key']}/assignee"
        try:
            _send(url, {"name": assignee}, method="PUT", auth=auth)
        except (urllib.error.URLError, OSError) as exc:
            raise ValueError(f"Assigning Jira issue for {tracked_obj} failed: {exc}") from exc
    return new_state


_jira_notifier.__name__ = "jira_notifier"
jira_notifier = _Notifier(_jira_notifier)


def snowflake_message_formatter(tracked_obj: Any, state: State) -> dict[str, Any]:
    """The row ``snowflake_logger`` writes: flow run id and name, task name, state name and
    the state's message (Prefect 1's keys)."""
    text = _message_text(state)
    return {
        "flow_id": context.get("flow_run_id"),
        "flow_name": context.get("flow_name"),
        "task_name": tracked_obj.name,
        "state": type(state).__name__,
        "message": [] if text is None else [{"value": text}],
    }


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_COLUMNS = "(FLOW_ID, FLOW_NAME, TASK_NAME, STATE, MESSAGE, INGESTED_AT)"


def _snowflake_table(full_name: str) -> str:
    parts = full_name.split(".")
    if len(parts) != 3 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ValueError(
            f"snowflake_logger: the log table must be DB.SCHEMA.TABLE, not {full_name!r}"
        )
    return full_name


def _sql_literal(value: Any) -> str:
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


def _snowflake_logger(
    tracked_obj: Any,
    old_state: State,
    new_state: State,
    ignore_states: Sequence[type] | None = None,
    only_states: Sequence[type] | None = None,
    snowflake_secret: str | None = None,
    snowflake_log_table_name: str | None = None,
    test_env: bool = False,
) -> State:
    """Insert a row describing the state change into a Snowflake table.

    Args:
        snowflake_secret: the local secret holding the connection arguments (``user``,
            ``password``, ``account``, ``role``, ``warehouse``, ``private_key``); default
            ``"SNOWFLAKE_CREDS"``.
        snowflake_log_table_name: the local secret holding the table's ``DB.SCHEMA.TABLE``
            name; default ``"LOG_TABLE_NAME_FULL"``.
        test_env: print the INSERT statement instead of running it.

    The values are bound as query parameters (Prefect 1 formatted them into the SQL).
    Needs ``snowflake-connector-python`` unless ``test_env``.
    """
    if _skipped(new_state, ignore_states, only_states):
        return new_state
    row = snowflake_message_formatter(tracked_obj, new_state)
    message = row["message"][0]["value"] if row["message"] else ""
    values = [row["flow_id"], row["flow_name"], row["task_name"], row["state"], message]
    table = _snowflake_table(
        str(_secret(snowflake_log_table_name or "LOG_TABLE_NAME_FULL", "snowflake_logger"))
    )
    if test_env:
        print(
            f"INSERT INTO {table} {_COLUMNS} VALUES ({', '.join(map(_sql_literal, values))}, CURRENT_TIMESTAMP());"
        )
        return new_state
    try:
        import snowflake.connector
    except ImportError as exc:
        raise ImportError(
            "snowflake_logger needs snowflake: pip install snowflake-connector-python"
        ) from exc
    credentials = dict(_secret(snowflake_secret or "SNOWFLAKE_CREDS", "snowflake_logger"))
    with snowflake.connector.connect(**credentials) as connection, connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} {_COLUMNS} VALUES (%s, %s, %s, %s, %s, CURRENT_TIMESTAMP())",
            values,
        )
    return new_state


_snowflake_logger.__name__ = "snowflake_logger"
snowflake_logger = _Notifier(_snowflake_logger)
