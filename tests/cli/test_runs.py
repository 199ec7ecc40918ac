"""``flowcore run``, ``resume``, ``runs ls|show|logs`` and ``visualize``, through the
installed console script in subprocesses, on the SQLite store in the test's home
directory (the default ``runs.store``)."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from flowcore.runs import RunStore
from tests.cli.conftest import Flowcore
from tests.runs.conftest import started, task_state
from tests.servers import free_port

FLOW_FILE = """
import os
from pathlib import Path
from flowcore import Flow, Parameter, task
from flowcore.engine.results import LocalResult

HERE = Path(__file__).parent

@task
def numbers(n):
    return list(range(n))

@task(log_stdout=True)
def square(x):
    with open(HERE / "squared", "a") as fh:
        fh.write(f"{x}\\n")
    if x == 3 and (HERE / "broken").exists():
        raise ValueError("three is broken")
    print(f"squared {x}")
    return x * x

@task
def total(xs):
    return sum(xs)

with Flow("cli demo", result=LocalResult(dir=str(HERE / "results"))) as flow:
    total(square.map(numbers(Parameter("n", default=5))))

with Flow("other") as other:
    numbers(2)
"""


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "demo_flow.py"
    path.write_text(textwrap.dedent(FLOW_FILE))
    return path


def _json(completed: object) -> object:
    assert completed.returncode == 0, completed.stderr  # type: ignore[attr-defined]
    return json.loads(completed.stdout)  # type: ignore[attr-defined]


def test_run_fails_then_resume_runs_only_the_failed_child(
    flowcore: Flowcore, flow_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "broken").touch()
    failed = flowcore("run", f"{flow_file}:flow", "--param", "n=6")
    assert failed.returncode == 1
    assert (
        "Flow run " in failed.stderr
        and "of 'cli demo': Failed (Some reference tasks failed.)" in failed.stderr
    )
    assert sorted((tmp_path / "squared").read_text().split()) == ["0", "1", "2", "3", "4", "5"]

    runs = _json(flowcore("runs", "ls", "--json"))
    assert isinstance(runs, list) and len(runs) == 1
    run = runs[0]
    assert (run["flow"], run["state"], run["parameters"]) == ("cli demo", "Failed", {"n": "6"})
    assert run["source"] == f"{flow_file}:flow"
    assert run["task_counts"] == {"Success": 7, "Failed": 1, "Mapped": 1, "TriggerFailed": 1}

    shown = _json(flowcore("runs", "show", run["run_id"][:8], "--json"))
    assert isinstance(shown, dict)
    by_task = {t["task"]: t for t in shown["tasks"]}
    assert by_task["square"]["state"] == "Mapped" and by_task["square"]["children"] == {
        "Success": 5,
        "Failed": 1,
    }
    assert by_task["total"]["state"] == "TriggerFailed"
    assert by_task["numbers"]["result_location"]  # `flowcore run` turns checkpointing on

    logs = flowcore("runs", "logs", run["run_id"], "--task", "square")
    assert logs.returncode == 0, logs.stderr
    assert "squared 4" in logs.stdout and "three is broken" in logs.stdout
    assert "numbers" not in logs.stdout

    (tmp_path / "broken").unlink()
    (tmp_path / "squared").unlink()
    resumed = flowcore("resume", run["run_id"])
    assert resumed.returncode == 0, resumed.stderr
    assert "of 'cli demo': Success" in resumed.stderr
    assert (tmp_path / "squared").read_text().split() == ["3"]
    newest = _json(flowcore("runs", "ls", "--json", "--limit", "1"))
    assert isinstance(newest, list)
    assert newest[0]["resumed_from"] == run["run_id"] and newest[0]["parameters"] == {"n": "6"}

    table = flowcore("runs", "ls")
    assert table.returncode == 0
    assert (
        "cli demo" in table.stdout
        and "Success" in table.stdout
        and "2 runs in sqlite:///" in table.stdout
    )
    assert (
        _json(flowcore("runs", "ls", "--json", "--state", "Failed"))[0]["run_id"] == run["run_id"]
    )  # type: ignore[index]

    svg = tmp_path / "run.svg"
    drawn = flowcore("visualize", f"{flow_file}:flow", "--run", run["run_id"], "-o", str(svg))
    assert drawn.returncode == 0, drawn.stderr
    text = svg.read_text()
    assert "square &lt;map&gt;" in text and "5 Success, 1 Failed" in text
    assert "#eb0000" in text  # the failed child colours the map node (Failed's colour)


def test_run_with_threads_and_resume_last(
    flowcore: Flowcore, flow_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "broken").touch()
    assert flowcore("run", str(flow_file) + ":cli demo", "--executor", "threads").returncode == 1
    (tmp_path / "broken").unlink()
    resumed = flowcore("run", str(flow_file) + ":flow", "--resume", "last")
    assert resumed.returncode == 0, resumed.stderr
    nothing_left = flowcore("run", str(flow_file) + ":flow", "--resume", "last")
    assert nothing_left.returncode == 1
    assert "ended Success, so there is nothing to resume" in nothing_left.stderr


SCHEDULED_FLOW_FILE = """
import os
from datetime import timedelta
from pathlib import Path

import pendulum

from flowcore import Flow, task
from flowcore.engine.results import LocalResult
from flowcore.schedules import Schedule
from flowcore.schedules.clocks import IntervalClock

HERE = Path(__file__).parent

@task
def step(x):
    if (HERE / "broken").exists():
        raise ValueError("broken")
    return x + 1

later = pendulum.now("UTC").add(hours=1)
schedule = (
    Schedule(clocks=[IntervalClock(timedelta(hours=1), start_date=later)])
    if os.environ.get("WITH_SCHEDULE") else None
)
with Flow("hourly", schedule=schedule, result=LocalResult(dir=str(HERE / "results"))) as flow:
    step(1)
"""


def test_visualize_without_dot_says_how_to_install_it(
    flowcore: Flowcore, flow_file: Path, tmp_path: Path
) -> None:
    # (it printed graphviz's ExecutableNotFound, without the install hint that
    # flow.visualize() gives)
    completed = flowcore("visualize", f"{flow_file}:other", "-o", str(tmp_path / "o.svg"), PATH="")
    assert completed.returncode == 1
    assert completed.stderr.startswith("Error: flowcore visualize needs Graphviz's `dot`")
    assert "apt-get install graphviz" in completed.stderr and not (tmp_path / "o.svg").exists()


def test_resume_of_a_scheduled_flow_resumes_the_run_once(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    # a flow with a schedule is run on it by `flowcore run`; resuming one of its runs is
    # one run, now (the schedule was followed, and the resume silently dropped)
    path = tmp_path / "hourly.py"
    path.write_text(SCHEDULED_FLOW_FILE)
    (tmp_path / "broken").touch()
    assert flowcore("run", str(path)).returncode == 1
    (tmp_path / "broken").unlink()
    resumed = flowcore("run", str(path), "--resume", "last", WITH_SCHEDULE="1")
    assert resumed.returncode == 0, resumed.stderr
    assert (
        "Resuming run" in resumed.stdout and "Waiting for next scheduled run" not in resumed.stdout
    )


def test_last_names_the_newest_run(flowcore: Flowcore, flow_file: Path, tmp_path: Path) -> None:
    (tmp_path / "broken").touch()
    assert flowcore("run", f"{flow_file}:other").returncode == 0
    assert flowcore("run", f"{flow_file}:flow").returncode == 1  # the newest run
    shown = _json(flowcore("runs", "show", "last", "--json"))
    assert isinstance(shown, dict) and (shown["flow"], shown["state"]) == ("cli demo", "Failed")
    logs = flowcore("runs", "logs", "last")
    assert logs.returncode == 0, logs.stderr
    messages = [line.split(" | ", 1)[1] for line in logs.stdout.splitlines() if " | " in line]
    assert "Task 'square[3]': Exception encountered during task execution!" in messages
    assert messages[-1] == "Flow run FAILED: some reference tasks failed."

    svg = tmp_path / "last.svg"
    drawn = flowcore("visualize", f"{flow_file}:other", "--run", "last", "-o", str(svg))
    assert drawn.returncode == 0, drawn.stderr  # the newest run of that flow
    assert "#28a745" in svg.read_text() and "#eb0000" not in svg.read_text()

    (tmp_path / "broken").unlink()
    (tmp_path / "squared").unlink()
    resumed = flowcore("resume", "last")
    assert resumed.returncode == 0, resumed.stderr
    assert "of 'cli demo': Success" in resumed.stderr
    assert (tmp_path / "squared").read_text().split() == ["3"]
    resumed_logs = flowcore("runs", "logs", "last").stdout
    assert f"Resuming run {shown['run_id']} of 'cli demo': " in resumed_logs
    nothing_left = flowcore("resume", "last")
    assert nothing_left.returncode == 1
    assert "ended Success, so there is nothing to resume" in nothing_left.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["runs", "show", "nope"], "Error: No run 'nope' in sqlite:///"),
        (["runs", "logs", "last"], "Error: No run in sqlite:///"),
        (["resume", "nope"], "Error: Cannot resume run 'nope': the run store (sqlite:///"),
        (
            ["run", "{file}"],
            "defines 2 flows (flow (name 'cli demo'), other (name 'other')): name one as",
        ),
        (["run", "{file}:missing"], "defines no flow 'missing'"),
        (
            ["run", "{file}:flow", "--executor", "spark"],
            "Error: Unknown executor 'spark': use local, threads, processes, dask or dask://HOST:PORT",
        ),
        (["run", "{file}:flow", "--rerun", "total"], "Error: --rerun needs --resume RUN_ID"),
        (["run", "{file}:flow", "--param", "n"], "'n' is not NAME=VALUE"),
        (["run", "{tmp}/absent.py"], "No flow file"),
        (
            ["run", "{tmp}/needs.py"],
            "Error: Flow 'needs' needs parameter 'a': give it with --param a=VALUE",
        ),
        (
            ["run", "{file}:flow", "--param", "zz=1"],
            "Error: Flow 'cli demo' has no parameter 'zz' (its parameters: n): fix the --param name",
        ),
        (["runs", "show", "abc"], "No run 'abc' in sqlite:///"),
        (["runs", "show", "abc"], "a run id prefix needs at least 4 characters"),
        (["runs", "ls", "--limit", "99999999999999999999"], "is not in the range 1<=x<=1000000000"),
        (["runs", "ls", "--store", "{tmp}/absent/x.db"], "Error: No run store at '"),
        (["runs", "ls", "--store", "ftp://host/x"], "Error: --store is 'ftp://host/x'; expected"),
        (["ui", "--store", "{tmp}/absent/x.db"], "Error: No run store at '"),
        (
            ["runs", "ls", "--store", "{file}"],
            "demo_flow.py (--store): {file} is not a SQLite database, or a damaged one (file is "
            "not a database): move it aside (the next run makes a new store there), or set "
            "--store to another path",
        ),
        (
            ["run", "{file}:flow", "--param", "n=1"],
            "whose directory {file}/x cannot be made ({file} is a file): give a path",
        ),
        (
            ["run", "{tmp}/twins.py:etl"],
            "twins.py defines 2 flows named 'etl' (first (name 'etl'), second (name 'etl')): "
            "it is ambiguous; name one as",
        ),
        (
            ["visualize", "{file}:other", "-o", "{tmp}/drawn.xyz"],
            "'xyz' is not a format flowcore visualize writes; end the output's name with one "
            "of .svg, .png, .pdf",
        ),
        (
            ["visualize", "{file}:other", "-o", "{tmp}/drawn.x11"],  # (dot opens a window)
            "'x11' is not a format flowcore visualize writes",
        ),
        (
            ["visualize", "{file}:other", "-o", "{tmp}/absent/drawn.svg"],
            "drawn.svg: the directory '",
        ),
    ],
)
def test_errors_are_one_line_with_exit_status_1(
    flowcore: Flowcore, flow_file: Path, tmp_path: Path, args: list[str], error: str
) -> None:
    (tmp_path / "twins.py").write_text(
        "from flowcore import Flow\nfirst = Flow('etl')\nsecond = Flow('etl')\n"
    )
    (tmp_path / "needs.py").write_text(
        "from flowcore import Flow, Parameter, task\n@task\ndef use(a):\n    return a\n"
        "with Flow('needs') as flow:\n    use(Parameter('a'))\n"
    )
    env = {}
    error = error.replace("{file}", str(flow_file))
    if "cannot be made" in error:  # (a store under a file, from the environment)
        env["FLOWCORE__RUNS__STORE"] = f"{flow_file}/x/runs.db"
        error = error.format(file=flow_file)
    completed = flowcore(*[a.format(file=flow_file, tmp=tmp_path) for a in args], **env)
    assert completed.returncode == 1
    assert not (tmp_path / "absent").exists()  # (read-only commands create no store)
    assert error in completed.stderr and completed.stderr.count("\n") == 1, completed.stderr


def test_a_store_given_with_store_is_named_so_in_the_errors_of_its_reads(
    flowcore: Flowcore, flow_file: Path
) -> None:
    """A connection is made by a store's first read, not when it is opened: its error
    names ``--store`` as where the store came from, not the setting."""
    url = f"postgresql+psycopg://u:pw@127.0.0.1:{free_port()}/db"
    commands = [
        ["runs", "ls"],
        ["runs", "show", "last"],
        ["runs", "logs", "abcd"],
        ["visualize", f"{flow_file}:other", "--run", "last", "-o", str(flow_file) + ".dot"],
    ]
    running = [flowcore.start([*args, "--store", url]) for args in commands]
    for command in running:
        completed = command.finish()
        assert completed.returncode == 1
        masked = url.replace(":pw@", ":***@")
        assert completed.stderr.startswith(f"Error: run store {masked} (--store): "), command.args
        assert "FLOWCORE__RUNS__STORE" not in completed.stderr


def _obeying_permissions(flowcore: Flowcore) -> Flowcore:
    """``flowcore`` run so that file permissions hold: as root (who may write anywhere),
    without the capabilities that override them (util-linux's ``setpriv``)."""
    if os.geteuid() != 0:
        return flowcore
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("as root, this test needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    bounded = Flowcore(flowcore.home)
    bounded.command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    bounded.command += flowcore.command
    return bounded


def test_a_store_in_a_read_only_directory_is_read_and_its_writing_says_why_not(
    flowcore: Flowcore, flow_file: Path, tmp_path: Path
) -> None:
    """Reading a store in a directory this user cannot write works (as it is on disk: a
    journal still to fold is an error saying why); a run's writing there is one ERROR
    naming the directory and the fix, not a promise to try again."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    path = directory / "runs.db"
    store = RunStore(f"sqlite:///{path}", writer="thread")
    store.submit(started("written-and-folded"))
    store.flush()
    assert store.count_runs() == 1 and store.get_run("written-and-folded") is not None  # folds
    store.close()
    directory.chmod(0o555)
    try:
        reader = _obeying_permissions(flowcore)
        listed = _json(reader("runs", "ls", "--json", "--store", str(path)))
        assert [run["run_id"] for run in listed] == ["written-and-folded"]  # type: ignore[index,union-attr]
        run = reader("run", f"{flow_file}:other", FLOWCORE__RUNS__STORE=str(path))
        assert run.returncode == 0, run.stderr
        logged = run.stdout + run.stderr  # (flowcore's log lines go to stdout)
        assert (
            f"/runs.db cannot be written by this user: its directory {directory} is read-only "
            "(SQLite writes runs.db-wal and runs.db-shm beside the file)"
        ) in logged
        assert (
            "set runs.store (FLOWCORE__RUNS__STORE) to a path in a directory you can write"
            in logged
        )
        assert "kept in memory" not in logged and "tries every few seconds" not in logged

        directory.chmod(0o755)
        store = RunStore(f"sqlite:///{path}", writer="thread")
        store.submit(started("in-the-journal"))
        store.submit(task_state("in-the-journal", "t-1", "Success", 1))
        store.flush()
        store.close()
        directory.chmod(0o555)
        refused = reader("runs", "show", "in-the-journal", "--store", str(path))
        assert refused.returncode == 1
        assert (
            "(--store): 1 run(s) have records in its journal still to be folded into its tables, "
            f"which takes writing, and its directory {directory} is read-only"
        ) in refused.stderr
    finally:
        directory.chmod(0o755)


def test_runs_store_none_is_a_clear_error(flowcore: Flowcore) -> None:
    completed = flowcore("runs", "ls", FLOWCORE__RUNS__STORE="none")
    assert completed.returncode == 1
    assert "The run store is off (runs.store = 'none')" in completed.stderr


def test_sys_exit_in_a_flow_file_or_a_task_fails_with_the_run_named_last(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(0)\n")
    imported = flowcore("run", str(exits))
    assert imported.returncode == 1
    assert imported.stderr == (
        f"Error: {exits} called sys.exit(0) while being imported: a flow file must not exit; "
        "guard it with if __name__ == '__main__'\n"
    )
    in_task = tmp_path / "exits_in_a_task.py"
    in_task.write_text(
        "import sys\nfrom flowcore import Flow, task\n"
        "@task\ndef leave():\n    sys.exit(0)\n"
        "with Flow('leaves') as flow:\n    leave()\n"
    )
    ran = flowcore("run", str(in_task))
    assert ran.returncode == 1
    (run,) = _json(flowcore("runs", "ls", "--json"))  # type: ignore[misc]
    assert ran.stderr.splitlines()[-1] == (
        f"Flow run {run['run_id']} of 'leaves': Failed (sys.exit(0) was called while it ran)"
    )
    assert run["state"] == "Failed"


def test_a_flow_bound_to_two_names_is_one_flow_and_a_file_named_with_a_colon_runs(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    aliased = tmp_path / "aliased.py"
    aliased.write_text(
        "from flowcore import Flow, task\n"
        "@task\ndef one():\n    return 1\n"
        "with Flow('etl') as etl_flow:\n    one()\n"
        "flow = etl_flow\n"
    )
    colon = tmp_path / "a:b.py"
    colon.write_text(aliased.read_text())
    for spec in (str(aliased), f"{aliased}:etl", f"{aliased}:flow", str(colon)):
        ran = flowcore("run", spec)
        assert ran.returncode == 0, ran.stderr
        assert ran.stderr.splitlines()[-1].endswith(
            "of 'etl': Success (All reference tasks succeeded.)"
        )
    missing = flowcore("run", f"{aliased}:nope")
    assert "its flows: etl_flow = flow (name 'etl')" in missing.stderr


def test_json_times_are_iso_8601_and_a_moved_flow_file_is_named(
    flowcore: Flowcore, flow_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "broken").touch()
    assert flowcore("run", f"{flow_file}:flow").returncode == 1
    (run,) = _json(flowcore("runs", "ls", "--json"))  # type: ignore[misc]
    assert "T" in run["started"] and datetime.fromisoformat(run["started"]).tzinfo is not None
    flow_file.rename(tmp_path / "moved.py")
    resumed = flowcore("resume", "last")
    assert resumed.returncode == 1
    assert resumed.stderr == (
        f"Error: Run {run['run_id']} came from {flow_file}, which is not there any more: resume "
        f"it with the flow file where it is now, `flowcore run FILE.py --resume {run['run_id']}`\n"
    )


def test_runs_show_prints_a_task_named_with_a_tab_and_a_newline_on_one_line(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    path = tmp_path / "odd_flow.py"
    path.write_text(
        "from flowcore import Flow, task\n"
        "@task(name='tab\\tnl\\nx')\n"
        "def odd():\n"
        "    return 1\n"
        "with Flow('odd names') as flow:\n"
        "    odd()\n"
    )
    assert flowcore("run", str(path)).returncode == 0
    shown = flowcore("runs", "show", "last")
    assert shown.returncode == 0, shown.stderr
    [row] = [line for line in shown.stdout.splitlines() if "tab" in line]
    assert row.split()[:2] == ["tab\\tnl\\nx", "tab\\tnl\\nx-1"]
    assert [t["task"] for t in _json(flowcore("runs", "show", "last", "--json"))["tasks"]] == [  # type: ignore[index]
        "tab\tnl\nx"
    ]


def test_runs_show_times_a_mapped_task_by_its_children_as_the_ui_does(
    flowcore: Flowcore, flow_file: Path
) -> None:
    from flowcore.runs import open_store
    from tests.ui.conftest import client_for

    assert flowcore("run", f"{flow_file}:flow", "--param", "n=3").returncode == 0
    shown = _json(flowcore("runs", "show", "last", "--json"))
    assert isinstance(shown, dict)
    square = {t["task"]: t for t in shown["tasks"]}["square"]
    assert square["started"] is not None and square["started"] <= square["ended"]
    store = open_store(str(flowcore.home / "flowcore.db"))
    assert store is not None
    with client_for(store) as client:
        tasks = client.get(f"/api/runs/{shown['run_id']}").json()["tasks"]
    in_ui = {t["task"]: t for t in tasks}["square"]
    assert (square["started"], square["ended"]) == (in_ui["started"], in_ui["ended"])


def test_runs_help_is_plain_text(flowcore: Flowcore) -> None:
    for verb in ("show", "logs"):
        shown = flowcore("runs", verb, "--help")
        assert shown.returncode == 0 and "(last: the newest run)" in shown.stdout
        assert "``" not in shown.stdout
