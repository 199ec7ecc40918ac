"""The ``flowcore`` command line as a whole: the console script and ``python -m flowcore``,
``--version``, and errors as one line with exit status 1 (a traceback only with ``--debug``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowcore import __version__
from flowcore.cli import main
from tests.cli.conftest import Flowcore, fill


def test_python_m_flowcore_is_the_same_command_line(flowcore: Flowcore) -> None:
    module = subprocess.run(
        [sys.executable, "-m", "flowcore", "--help"], capture_output=True, text=True,
        env=flowcore.environment(), timeout=60,
    )  # fmt: skip
    script = flowcore("--help")
    assert module.returncode == script.returncode == 0
    assert module.stdout.startswith("Usage: python -m flowcore [OPTIONS] COMMAND [ARGS]...")
    assert module.stdout.split("\n", 1)[1] == script.stdout.split("\n", 1)[1]
    assert "cache" in script.stdout and "--debug" in script.stdout


def test_a_group_without_a_command_prints_its_help(flowcore: Flowcore) -> None:
    alone, runs, cache = flowcore.all([], ["runs"], ["cache"])
    for process, args in (
        (alone, ["--help"]),
        (runs, ["runs", "--help"]),
        (cache, ["cache", "--help"]),
    ):
        assert process.returncode == 0 and process.stderr == "", process.stderr
        assert process.stdout == flowcore(*args).stdout  # the whole help, many lines
    assert alone.stdout.startswith("Usage: flowcore [OPTIONS] COMMAND [ARGS]...\n")
    assert "\nCommands:\n" in runs.stdout and "  ls " in runs.stdout


def test_version(flowcore: Flowcore) -> None:
    version = flowcore("--version")
    assert version.returncode == 0 and version.stdout == f"flowcore {__version__}\n"


BAD = [
    (["cache", "ls", "--older-than", "7x"], "Error: Invalid value for '--older-than': '7x' is not a duration: use a number and a unit, e.g. 90s, 15m, 12h, 7d, 2w (or 1h30m)"),
    (["cache", "gc", "--max-age", "30"], "Error: Invalid value for '--max-age': '30' is not a duration"),
    (["cache", "ls", "--larger-than", "10M"], "Error: Invalid value for '--larger-than': '10M' is not a size: use bytes or a number and a unit, e.g. 500, 10KB, 10MB, 1GB (KiB, MiB, GiB: 1024-based)"),
    (["cache", "gc", "--max-size", "lots"], "Error: Invalid value for '--max-size': 'lots' is not a size"),
    (["cache", "gc", "--max-entries", "-1"], "Error: Invalid value for '--max-entries'"),
    (["cache", "ls", "--store", "{tmp}/missing"], "Error: no cache store at '{tmp}/missing' (--store): no such directory; give the directory a flow's cache_store names, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"),
    (["cache", "ls", "--store", "s3://"], "Error: cache store 's3://' has no bucket name (--store); write it as s3://BUCKET/PREFIX"),
    (["cache", "ls", "--store", "memory"], "Error: --store is 'memory': a memory cache lives only in the process that ran the flow"),
    (["cache", "ls", "--store", "ftp://host/x"], "Error: --store 'ftp://host/x' is not a cache store; use a directory, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"),
    (["cache", "show"], "Error: Missing argument 'KEY'. (see 'flowcore cache show --help')"),
    (["cache", "ls", "--nope"], "Error: No such option '--nope'"),
    (["caches"], "Error: No such command 'caches'"),
]  # fmt: skip


def test_errors_are_one_line_naming_the_fix_with_exit_status_1(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    finished = flowcore.all(*[[a.replace("{tmp}", str(tmp_path)) for a in args] for args, _ in BAD])
    for process, (_, expected) in zip(finished, BAD):
        assert process.returncode == 1, process.args
        assert process.stdout == "", process.args
        [line] = process.stderr.splitlines()
        assert line.startswith(expected.replace("{tmp}", str(tmp_path))), process.args


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowcore.caching.cache import Cache

    def broken(self: Cache, **filters: object) -> list[object]:
        raise RuntimeError("the disk caught fire")

    store = str(tmp_path / "store")
    fill(store)
    monkeypatch.setattr(Cache, "entries", broken)
    with pytest.raises(SystemExit) as exited:
        main(["cache", "ls", "--store", store])
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "Error: RuntimeError: the disk caught fire (flowcore --debug ... shows the traceback)\n"
    )
    with pytest.raises(RuntimeError, match="the disk caught fire"):
        main(["--debug", "cache", "ls", "--store", store])


def test_success_is_exit_status_0_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    fill(store)
    with pytest.raises(SystemExit) as exited:
        main(["cache", "ls", "--store", store, "--task", "nothing-like-it"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"No cache entries in {store} match.\n"
