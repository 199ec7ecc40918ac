"""LocalResult specifics: directories, atomic writes, and a writer killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowcore.engine.results import LocalResult
from flowcore.engine.serializers import Serializer
from flowcore.exceptions import ResultStorageError
from flowcore.utilities.configuration import set_temporary_config


def test_default_dir_is_under_the_home_dir(tmp_path: Path) -> None:
    with set_temporary_config({"home_dir": str(tmp_path / "home")}):
        result = LocalResult()
    assert result.dir == str(tmp_path / "home" / "results")
    assert os.path.isdir(result.dir)


def test_a_dir_inside_the_home_dir_is_kept(tmp_path: Path) -> None:
    with set_temporary_config({"home_dir": str(tmp_path)}):
        result = LocalResult(dir=tmp_path / "my-results")
    assert result.dir == str(tmp_path / "my-results")


def test_validate_dir_makes_it_absolute_and_creates_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = LocalResult(dir="relative/out")
    assert result.dir == str(tmp_path / "relative" / "out") and os.path.isdir(result.dir)
    lazy = LocalResult(dir="not/created", validate_dir=False)
    assert lazy.dir == "not/created" and not (tmp_path / "not").exists()


def test_an_uncreatable_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ResultStorageError, match="cannot create its directory"):
        LocalResult(dir=blocker / "sub")


def test_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path, location="deep/er/x.pkl")
    written = result.write(list(range(1000)))
    assert written.location == str(tmp_path / "deep" / "er" / "x.pkl")
    assert sorted(os.listdir(tmp_path / "deep" / "er")) == ["x.pkl"]


class _Exploding(Serializer):
    def serialize(self, value: object) -> bytes:
        raise RuntimeError("cannot serialize this")


def test_a_failing_serializer_writes_nothing(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path, location="out.pkl", serializer=_Exploding())
    with pytest.raises(RuntimeError, match="cannot serialize"):
        result.write(1)
    assert os.listdir(tmp_path) == []


def test_absolute_template_stays_absolute(tmp_path: Path) -> None:
    result = LocalResult(dir=tmp_path / "root", location=str(tmp_path / "elsewhere" / "{name}.pkl"))
    written = result.write(7, name="abs")
    assert written.location == str(tmp_path / "elsewhere" / "abs.pkl")
    assert result.read(str(tmp_path / "elsewhere" / "abs.pkl")).value == 7


def test_a_writer_killed_mid_write_leaves_no_file_at_the_target(tmp_path: Path) -> None:
    """SIGKILL a process while it writes a large result: the target location never holds
    a partial file, and the next run computes and writes it."""
    script = tmp_path / "writer.py"
    marker = tmp_path / "ran.txt"
    script.write_text(textwrap.dedent(f"""
        from flowcore import Flow, task
        from flowcore.engine.results import LocalResult

        @task(result=LocalResult(dir={str(tmp_path / "store")!r}), target="big.bin")
        def big():
            with open({str(marker)!r}, "a") as fh:
                fh.write("ran\\n")
            return b"x" * (300 * 1024 * 1024)

        with Flow("crash") as flow:
            big()

        state = flow.run(context={{"checkpointing": True}})
        assert state.is_successful(), state
    """))
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.exists() and any(name.endswith(".tmp") for name in os.listdir(store)):
            break
        assert process.poll() is None, "the writer finished before it could be killed"
        time.sleep(0.001)
    else:
        process.kill()
        pytest.fail("the writer never started writing")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (store / "big.bin").exists()
    assert marker.read_text() == "ran\n"

    rerun = subprocess.run([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, timeout=120)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert marker.read_text() == "ran\nran\n"
    assert (store / "big.bin").stat().st_size > 300 * 1024 * 1024
