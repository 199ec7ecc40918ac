"""The code is linted and formatted (``make lint``), checked with every test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent))
PATHS = ["flowcore", "tests", "examples", "benchmarks"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command: list[str]) -> None:
    if RUFF is None:
        pytest.fail(f"no ruff beside {sys.executable}: pip install -e '.[test]'")
    done = subprocess.run(
        [RUFF, *command, *PATHS], cwd=ROOT, capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
