"""``flow.visualize()`` without a filename leaves nothing in temporary directories.

The drawing goes to ``<home_dir>/visualize/<flow slug>.<format>`` (one file per flow name,
replaced by the next drawing) and is opened by the desktop's viewer: here a real
``xdg-open`` script on the PATH that records what it was asked to open. Prefect 1.4.1 left
a new temporary file per call.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from flowcore import Flow, task
from flowcore.utilities.configuration import set_temporary_config


@task
def one() -> int:
    return 1


@task
def add(x: int) -> int:
    return x + 1


def _flow(name: str) -> Flow:
    with Flow(name) as flow:
        add(one())
    return flow


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A home dir, an empty temporary directory and a PATH holding only ``dot`` and a
    recording ``xdg-open``."""
    paths = {name: tmp_path / name for name in ("home", "tmp", "bin")}
    for path in paths.values():
        path.mkdir()
    dot = shutil.which("dot")
    assert dot is not None
    (paths["bin"] / "dot").symlink_to(dot)
    paths["opened"] = tmp_path / "opened.txt"
    viewer = paths["bin"] / "xdg-open"
    viewer.write_text(f'#!/bin/sh\necho "$1" >> {paths["opened"]}\n')
    viewer.chmod(0o755)
    monkeypatch.setenv("PATH", str(paths["bin"]))
    monkeypatch.setenv("DISPLAY", ":0")  # (a viewer is started only where there is a display)
    for variable in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(variable, str(paths["tmp"]))
    monkeypatch.setattr(tempfile, "tempdir", str(paths["tmp"]))
    return paths


def _wait_for_lines(path: Path, count: int) -> list[str]:
    while not path.exists() or len(path.read_text().splitlines()) < count:
        time.sleep(0.01)
    return path.read_text().splitlines()


def test_visualize_writes_one_file_per_flow_under_home_and_no_temporary_directory(
    isolated: dict[str, Path],
) -> None:
    with set_temporary_config({"home_dir": str(isolated["home"])}):
        _flow("My Flow").visualize()
        _flow("My Flow").visualize(format="svg")
        _flow("My Flow").visualize()
        _flow("Other").visualize()
    opened = _wait_for_lines(isolated["opened"], 4)
    drawn = isolated["home"] / "visualize"
    assert opened == [
        str(drawn / name) for name in ("my-flow.pdf", "my-flow.svg", "my-flow.pdf", "other.pdf")
    ]
    assert sorted(p.name for p in drawn.iterdir()) == ["my-flow.pdf", "my-flow.svg", "other.pdf"]
    assert list(isolated["tmp"].iterdir()) == []


def test_visualize_with_a_filename_writes_only_that_file(
    isolated: dict[str, Path], tmp_path: Path
) -> None:
    with set_temporary_config({"home_dir": str(isolated["home"])}):
        _flow("Named").visualize(filename=str(tmp_path / "drawing"), format="png")
    assert (tmp_path / "drawing.png").is_file() and not (tmp_path / "drawing").exists()
    assert list(isolated["tmp"].iterdir()) == []
    assert list(isolated["home"].iterdir()) == []
    assert not isolated["opened"].exists()
