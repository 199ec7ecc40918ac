"""``flowcore ui`` as users start it: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli.conftest import SCRIPT
from tests.ui.conftest import Recorded


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``flowcore ui --port 0 ARGS`` running; yields the URL it printed first."""
    assert SCRIPT is not None
    process = subprocess.Popen(
        [SCRIPT, "ui", "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else url
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def _get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_serves_the_store_it_is_given(recorded: Recorded) -> None:
    with serving("--store", str(recorded.path)) as url:
        assert url.endswith("/") and "token" not in url
        status, body = _get(url + "api/runs?limit=1")
        assert status == 200 and json.loads(body)["total"] == 6
        status, page = _get(url)
        assert status == 200 and "ui demo" in page


def test_a_token_from_the_environment_guards_every_request(recorded: Recorded) -> None:
    with serving("--store", str(recorded.path), env={"FLOWCORE__UI__TOKEN": "t0ken"}) as url:
        assert url.endswith("/?token=t0ken")
        base = url.split("?")[0]
        assert _get(base + "api/runs")[0] == 401
        assert _get(base + "api/runs", Authorization="Bearer t0ken")[0] == 200


def test_the_printed_url_carries_any_token_url_encoded(recorded: Recorded) -> None:
    with serving("--store", str(recorded.path), "--token", "s3cr&t tok/+") as url:
        assert url.endswith("/?token=s3cr%26t%20tok%2F%2B")
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with browser.open(url, timeout=30) as answer:  # the token sets a cookie, then /
            assert answer.status == 200 and "ui demo" in answer.read().decode()


def test_another_host_needs_a_token(recorded: Recorded) -> None:
    assert SCRIPT is not None
    done = subprocess.run(
        [SCRIPT, "ui", "--store", str(recorded.path), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "FLOWCORE__UI__TOKEN"},
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(
        "Error: --host 0.0.0.0 lets other machines reach the UI: give a token with --token"
    )


def test_a_store_that_does_not_exist_is_an_error_and_not_made(tmp_path: Path) -> None:
    assert SCRIPT is not None
    missing = tmp_path / "nodir" / "x.db"
    for args, env, source in (
        (["--store", str(missing)], {}, "--store"),
        (["--store", f"sqlite:///{missing}"], {}, "--store"),
        ([], {"FLOWCORE__RUNS__STORE": str(missing)}, "FLOWCORE__RUNS__STORE"),
    ):
        done = subprocess.run(
            [SCRIPT, "ui", "--port", "0", *args], capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL, env={**os.environ, **env},
        )  # fmt: skip
        assert done.returncode == 1 and done.stdout == "", done.stdout
        assert done.stderr.startswith(
            f"Error: No run store at {str(missing)!r} (from {source}): that file does not exist. "
            "Give the path of an existing store with --store"
        ), done.stderr
        assert done.stderr.count("\n") == 1 and not missing.parent.exists()


def test_a_corrupt_store_is_a_503_naming_where_it_was_given(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with serving("--store", str(corrupt)) as url:
        status, body = _get(url + "api/runs")
        assert status == 503
        error = json.loads(body)["error"]
        assert f"{corrupt} (--store): {corrupt} is not a SQLite database, or a damaged one" in (
            error
        )
        assert error.endswith(
            "move it aside (the next run makes a new store there), or set --store to another path"
        )
        assert "FLOWCORE__RUNS__STORE" not in error


def test_a_port_in_use_is_one_line(recorded: Recorded) -> None:
    with serving("--store", str(recorded.path)) as url:
        port = url.rsplit(":", 1)[1].strip("/")
        assert SCRIPT is not None
        done = subprocess.run(
            [SCRIPT, "ui", "--store", str(recorded.path), "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and f"Error: Cannot listen on 127.0.0.1:{port}" in done.stderr
        assert done.stderr.count("\n") == 1


def test_without_the_ui_extra_it_names_the_extra(tmp_path: Path) -> None:
    hide = (
        "import sys; sys.modules['starlette'] = None; from flowcore.cli import main; main(['ui'])"
    )
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "Error: flowcore ui needs the 'starlette' package: pip install 'flowcore[ui]'"
    )


@pytest.mark.parametrize("args", [["--port", "70000"], ["--nope"]])
def test_bad_options(args: list[str]) -> None:
    assert SCRIPT is not None
    done = subprocess.run([SCRIPT, "ui", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("Error: ")
