"""The flows the UI tests record: run in the test process, or from files by ``flowcore``.

* :func:`record_demo` - ``ui demo``: a task whose *name* is ``<script>alert(1)</script>``
  and logs HTML, then a map of 4 squares whose child 2 fails with an HTML message.
* :func:`record_ok` - ``ui ok``: two tasks, succeeds (``n`` times, for pagination).
* :func:`record_big_map` - ``ui big map``: a map of ``n`` children (1,000 in the browser
  test), all successful.
* :func:`record_chatty` - ``ui chatty``: a task that logs 5 lines, then one that logs 300.
* ``RESUMABLE`` - a flow file (``ui resumable``) whose mapped child 3 fails while a file
  ``broken`` lies beside it (is interrupted, as by Ctrl-C, while a file ``interrupt``
  does), checkpointing to ``results/`` beside it: a run can be resumed by ``flowcore
  resume`` once the file is gone.
* ``LIVE`` - a flow file (``ui live``) whose children 2 and 3 wait for a file ``release``
  beside it (at most 60 s), so a test can watch the run while it is in progress.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import flowcore
from flowcore import Flow, Parameter, task
from flowcore.cli.loading import load_flow
from flowcore.engine.state import State

XSS_NAME = "<script>alert(1)</script>"
XSS_MESSAGE = "<img src=x onerror=alert(2)>"
XSS_LOG = "<b>bold</b> <script>alert(3)</script>"


@task(name=XSS_NAME)
def _spooky(n: int) -> list[int]:
    flowcore.context.logger.info(XSS_LOG)
    return list(range(n))


@task
def _square(x: int) -> int:
    if x == 2:
        raise ValueError(XSS_MESSAGE)
    return x * x


@task
def _one() -> int:
    return 1


@task
def _plus(x: int) -> int:
    return x + 1


def record_demo() -> State:
    with Flow("ui demo") as flow:
        _square.map(_spooky(Parameter("n", default=4)))
    state = flow.run()
    assert state is not None and state.is_failed(), state
    return state


def record_ok() -> State:
    with Flow("ui ok") as flow:
        _plus(_one())
    state = flow.run()
    assert state is not None and state.is_successful(), state
    return state


def record_big_map(n: int) -> State:
    with Flow("ui big map") as flow:
        _plus.map(list(range(n)))
    state = flow.run()
    assert state is not None and state.is_successful(), state
    return state


RESUMABLE = """
from pathlib import Path

from flowcore import Flow, Parameter, task
from flowcore.engine.results import LocalResult

HERE = Path(__file__).parent


@task
def numbers(n):
    return list(range(n))


@task
def square(x):
    if x == 3 and (HERE / "broken").exists():
        raise ValueError("three is broken")
    if x == 3 and (HERE / "interrupt").exists():
        raise KeyboardInterrupt  # as Ctrl-C: the run ends Cancelled
    return x * x


@task
def total(xs):
    return sum(xs)


with Flow("ui resumable", result=LocalResult(dir=str(HERE / "results"))) as flow:
    total(square.map(numbers(Parameter("n", default=5))))
"""

LIVE = """
import time
from pathlib import Path

from flowcore import Flow, task

HERE = Path(__file__).parent


@task
def work(x):
    if x >= 2:
        deadline = time.monotonic() + 60
        while not (HERE / "release").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("nobody released the flow")
            time.sleep(0.05)
    return x


with Flow("ui live") as flow:
    work.map(list(range(4)))
"""


def write_flow(directory: Path, source: str) -> Path:
    """``source`` as ``flow.py`` in ``directory`` (made if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "flow.py"
    path.write_text(textwrap.dedent(source))
    return path


def record_resumable(directory: Path) -> State:
    """A failed run of ``RESUMABLE`` from ``directory``, recorded with its source (as
    ``flowcore run`` records it), in the test process."""
    path = write_flow(directory, RESUMABLE)
    (directory / "broken").touch()
    loaded = load_flow(f"{path}:flow")
    state = loaded.flow.run(context={"checkpointing": True, "flow_source": loaded.spec})
    (directory / "broken").unlink()
    assert state is not None and state.is_failed(), state
    return state


def record_cancelled(directory: Path) -> None:
    """A run of ``RESUMABLE`` from ``directory`` interrupted as by Ctrl-C (it ends
    Cancelled), recorded with its source, in the test process."""
    path = write_flow(directory, RESUMABLE)
    (directory / "interrupt").touch()
    loaded = load_flow(f"{path}:flow")
    try:
        loaded.flow.run(context={"checkpointing": True, "flow_source": loaded.spec})
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    finally:
        (directory / "interrupt").unlink()


@task
def _early() -> int:
    for number in range(5):
        flowcore.context.logger.warning(f"early line {number}")
    return 1


@task
def _chatty(x: int) -> int:
    for number in range(300):
        flowcore.context.logger.info(f"chatty line {number}")
    return x


def record_chatty() -> State:
    """``ui chatty``: a task logs 5 WARNING lines, then the next one 300 lines."""
    with Flow("ui chatty") as flow:
        _chatty(_early())
    state = flow.run()
    assert state is not None and state.is_successful(), state
    return state
