"""``flowcore resume`` and ``flowcore run --resume`` with the resumed run's parameters,
through the installed console script in subprocesses (``tests/cli/conftest.py``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.cli.conftest import Flowcore

FLOW_FILE = """
from pathlib import Path
from flowcore import Flow, Parameter, task
from flowcore.engine.results import LocalResult

HERE = Path(__file__).parent

@task
def double(n):
    with open(HERE / "doubled", "a") as fh:
        fh.write(f"{n}\\n")
    return 2 * n

@task
def report(doubled, n):
    if (HERE / "broken").exists():
        raise ValueError("not yet")
    with open(HERE / "reported", "a") as fh:
        fh.write(f"{doubled},{n}\\n")

with Flow("pfail", result=LocalResult(dir=str(HERE / "results"))) as flow:
    n = Parameter("n")
    report(double(n), n)
    {extra}
"""


def _write(path: Path, extra: str = "") -> Path:
    path.write_text(textwrap.dedent(FLOW_FILE).replace("{extra}", extra))
    return path


def _newest_parameters(flowcore: Flowcore) -> dict[str, str]:
    listed = flowcore("runs", "ls", "--json", "--limit", "1")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)[0]["parameters"]  # type: ignore[no-any-return]


def test_run_resume_takes_the_recorded_parameters_and_param_overrides_them(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    flow_file = _write(tmp_path / "pfail.py")
    (tmp_path / "broken").touch()
    assert flowcore("run", str(flow_file), "--param", "n=5").returncode == 1
    (tmp_path / "broken").unlink()
    resumed = flowcore("run", str(flow_file), "--resume", "last")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "reported").read_text().split() == ["10,5"]
    assert _newest_parameters(flowcore) == {"n": "5"}

    (tmp_path / "broken").touch()
    assert flowcore("run", str(flow_file), "--param", "n=5").returncode == 1
    (tmp_path / "broken").unlink()
    resumed = flowcore("run", str(flow_file), "--resume", "last", "--param", "n=7")
    assert resumed.returncode == 0, resumed.stderr
    assert "double-1 (parameter 'n' differs (was 5, now 7))" in resumed.stdout
    assert (tmp_path / "reported").read_text().split() == ["10,5", "14,7"]


def test_resume_drops_a_recorded_parameter_the_flow_no_longer_has(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    flow_file = _write(tmp_path / "pfail.py", extra='double(Parameter("text", default=0))')
    (tmp_path / "broken").touch()
    assert flowcore("run", str(flow_file), "--param", "n=5").returncode == 1
    (tmp_path / "broken").unlink()
    _write(flow_file)  # the parameter 'text' is gone from the file
    resumed = flowcore("resume", "last")
    assert resumed.returncode == 0, resumed.stderr
    assert "no longer has the parameter(s) 'text' of the resumed run" in resumed.stdout
    assert (tmp_path / "reported").read_text().split() == ["10,5"]
    assert sorted((tmp_path / "doubled").read_text().split()) == ["0", "5"]  # not run again
