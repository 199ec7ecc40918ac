"""Tasks and flows for the executor tests, in an importable module.

Dask workers (a ``LocalCluster``'s processes, or the ``dask worker`` processes the tests start
with ``PYTHONPATH`` set to the repository) import this module to load the tasks, so task code
lives here rather than inside test functions. Side effects that the tests count (runs, ticks
of a timed-out task) go to files, which every worker process on this machine can reach.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import flowcore
from flowcore import Flow, Parameter, flatten, task, unmapped
from flowcore.engine import signals
from flowcore.engine.cache_validators import all_inputs
from flowcore.engine.state import Mapped, State
from flowcore.triggers import all_failed, always_run, manual_only

REPO = Path(__file__).resolve().parents[2]


class Boom(Exception):
    """A task error whose class workers and the client must both import."""


# -- tasks ----------------------------------------------------------------------------------


@task
def inc(x: int) -> int:
    return x + 1


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def add_all(x: int, ys: list[int]) -> int:
    return x + sum(ys)


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def pair(x: int) -> list[int]:
    return [x, 10 * x]


@task
def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise Boom(f"bad item {x}")
    return x


@task
def skip_on(x: int, bad: int) -> int:
    if x == bad:
        raise signals.SKIP(f"skipping {x}")
    return x


@task(trigger=always_run)
def count_finished(xs: list[Any]) -> int:
    return len(xs)


@task(trigger=all_failed)
def cleanup() -> str:
    return "cleaned"


@task(trigger=manual_only)
def approve(x: int) -> int:
    return x


@task
def raise_fail() -> None:
    raise signals.FAIL("failed on purpose")


@task
def raise_success() -> None:
    raise signals.SUCCESS("done early", result=42)


@task
def loop_to(n: int) -> int:
    count = flowcore.context.get("task_loop_count", 1)
    so_far = flowcore.context.get("task_loop_result", 0)
    if count < n:
        raise signals.LOOP(result=so_far + count)
    return so_far + count


@task(max_retries=2, retry_delay=timedelta(0))
def flaky(x: int, succeed_on: int) -> tuple[int, int]:
    run = flowcore.context.task_run_count
    if run < succeed_on:
        raise Boom(f"attempt {run}")
    return x, run


@task
def describe(x: int) -> dict[str, Any]:
    return {
        "x": x,
        "map_index": flowcore.context.get("map_index"),
        "task_full_name": flowcore.context.get("task_full_name"),
        "flow_name": flowcore.context.get("flow_name"),
        "parameters": dict(flowcore.context.get("parameters") or {}),
    }


@task
def record(path: str, value: int) -> int:
    """Append a line to ``path`` (counts runs across processes) and return ``value``."""
    with open(path, "a") as handle:
        handle.write(f"{value}\n")
    return value


@task(cache_for=timedelta(hours=1), cache_validator=all_inputs)
def cached_record(path: str, value: int) -> int:
    with open(path, "a") as handle:
        handle.write(f"{value}\n")
    return value


@task
def tick_until_stopped(path: str, seconds: float) -> str:
    """Append a tick to ``path`` every 20 ms for ``seconds`` (Python code: a timeout can stop
    it between ticks); reports where it ran."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path, "a") as handle:
            handle.write(".")
        time.sleep(0.02)
    return "finished"


@task
def spin_with_pid(marker: str) -> None:
    """Write this process's id to ``marker``, then spin for up to 300 s; an interrupt
    (KeyboardInterrupt) is recorded in ``<marker>.stopped``."""
    path = Path(marker)
    path.write_text(str(os.getpid()))
    try:
        for _ in range(30_000):
            time.sleep(0.01)
    except KeyboardInterrupt:
        path.with_name(path.name + ".stopped").write_text("KeyboardInterrupt")
        raise


@task
def pool_threads(x: int) -> int:
    """The id of the thread that runs it (after a short pause, so the pool's threads share
    the work)."""
    time.sleep(0.05)
    return threading.get_ident()


@task
def wait_for_path(path: str, x: int = 0) -> int:
    """Wait (up to 120 s) until ``path`` exists; return ``x``."""
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return x


@task
def where() -> dict[str, Any]:
    process = multiprocessing.current_process()
    return {
        "pid": os.getpid(),
        "daemon": process.daemon,
        "main_thread": threading.current_thread() is threading.main_thread(),
    }


@task
def gc_first_threshold(x: int = 0) -> int:
    """The garbage collector's first threshold where the task runs."""
    import gc

    return gc.get_threshold()[0]


@task
def dask_key(x: int = 0) -> str:
    from distributed import get_worker

    return str(get_worker().get_current_task())


@task
def dask_resources() -> dict[str, float]:
    from distributed import get_worker

    worker = get_worker()
    return dict(worker.state.tasks[worker.get_current_task()].resource_restrictions or {})


@task
def keys_in_cluster_memory(upstream: Any, released: list[str]) -> list[str]:
    """The keys the scheduler holds in memory while this task runs, once no key of a task
    named in ``released`` is among them (or after 10 s, whatever they are then)."""
    from distributed import get_client

    client = get_client()
    deadline = time.monotonic() + 10
    while True:
        keys: list[str] = client.run_on_scheduler(_memory_keys)
        names = {key.rsplit("-", 1)[0] for key in keys}
        if names.isdisjoint(released) or time.monotonic() > deadline:
            return keys
        time.sleep(0.02)


def _memory_keys(dask_scheduler: Any) -> list[str]:
    return sorted(str(key) for key, ts in dask_scheduler.tasks.items() if ts.state == "memory")


PICKLED_HERE = [0]


class Payload:
    """A value that counts how often it is pickled in the current process."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self) -> tuple[Any, ...]:
        PICKLED_HERE[0] += 1
        return (Payload, (self.n,))


@task
def make_payload(n: int) -> Payload:
    return Payload(n)


@task
def payload_plus(x: int, payload: Payload) -> int:
    return x + payload.n


def plain_double(x: int) -> int:
    """A plain function: ``task(plain_double)`` pickles it by reference (module + name)."""
    return 2 * x


@task
def crash_worker() -> None:
    os._exit(17)


@task
def make_lock() -> Any:
    return threading.Lock()


@task
def slow_inc(x: int, marker_dir: str) -> int:
    """``x + 1`` after 50 ms; leaves a file per finished item so a test can watch progress."""
    time.sleep(0.05)
    Path(marker_dir, f"{x}-{os.getpid()}").touch()
    return x + 1


def _crash_once(x: int, directory: str) -> int:
    """``x + 1``, leaving one file per run in ``directory``; item 0 kills its worker process
    on its first attempt (a ``crashed`` marker file remembers it). It dies 0.2 s into the
    run, once flowcore's start event has left the worker (``executors/_dask_outcomes.py``)."""
    Path(directory, f"run-{x}-{os.getpid()}-{time.monotonic_ns()}").touch()
    marker = Path(directory, "crashed")
    if x == 0 and not marker.exists():
        marker.touch()
        time.sleep(0.2)
        os._exit(1)
    return x + 1


SEEN: list[tuple[str, str]] = []  # transitions seen in this process (the driver's crash reports)


def _seen(task: Any, old: State, new: State) -> None:
    SEEN.append((type(old).__name__, type(new).__name__))


crash_once = task(_crash_once, name="crash_once")
crash_once_retried = task(
    _crash_once,
    name="crash_once_retried",
    max_retries=1,
    retry_delay=timedelta(milliseconds=50),
    state_handlers=[_seen],
)


def runs_of(directory: str) -> dict[int, int]:
    """``{item: runs}`` from the files :func:`_crash_once` leaves."""
    counts: dict[int, int] = {}
    for path in Path(directory).glob("run-*"):
        item = int(path.name.split("-")[1])
        counts[item] = counts.get(item, 0) + 1
    return counts


# -- flows ----------------------------------------------------------------------------------


def map_reduce_flow(items: list[int]) -> tuple[Flow, Any, Any]:
    with Flow("map-reduce") as flow:
        mapped = inc.map(items)
        reduced = total(mapped)
    return flow, mapped, reduced


def map_of_map_flow(n: int) -> tuple[Flow, Any, Any, Any]:
    with Flow("map-of-map") as flow:
        first = inc.map(numbers(n))
        second = add.map(first, unmapped(100))
        reduced = total(second)
    return flow, first, second, reduced


def summary(state: State) -> Any:
    """``(state class name, result)``, with the children of a Mapped state."""
    if isinstance(state, Mapped):
        return ("Mapped", [summary(child) for child in state.map_states])
    result = state.result
    if isinstance(result, BaseException):
        result = f"{type(result).__name__}: {result}"
    return (type(state).__name__, result)


def parameter_flow() -> tuple[Flow, Any]:
    with Flow("parameters") as flow:
        start = Parameter("start", default=1)
        step = Parameter("step")
        out = add(start, step)
    return flow, out


def flatten_flow() -> tuple[Flow, Any, Any]:
    with Flow("flatten") as flow:
        nested = pair.map([1, 2, 3])
        flat = inc.map(flatten(nested))
        literal = inc.map(flatten([[1], [2, 3]]))
    return flow, flat, literal


# -- waiting in tests -----------------------------------------------------------------------


def wait_until(predicate: Any, timeout: float = 60, what: str = "the condition") -> None:
    """Poll ``predicate`` until it is true; an AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def wait_for_file(path: Path, process: Any, timeout: float = 120) -> None:
    """Wait until ``path`` has content; an AssertionError if ``process`` (a Popen) ends
    first or after ``timeout`` seconds."""

    def ready() -> bool:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"the process ended ({process.returncode}) first:\n{output}")
        return path.exists() and bool(path.read_text())

    wait_until(ready, timeout, f"{path} being written")


def block_until(started: str, go: str, done: str) -> str:
    """A plain function for ``DaskExecutor.submit``: write ``started``, wait (up to 120 s)
    for ``go`` to exist, then write ``done``."""
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(done).write_text("done")
    return "done"


def touch(path: str) -> str:
    """A plain function for ``DaskExecutor.submit``: create ``path``."""
    Path(path).write_text("ran")
    return path


# -- batched maps (engine/batches.py) -------------------------------------------------------


def _run_file(directory: str, x: int) -> None:
    Path(directory, f"run-{x}-{os.getpid()}-{time.monotonic_ns()}").touch()


def _crash_in_batch(x: int, directory: str, bad: int) -> int:
    """``x + 1``, leaving a file per run; item ``bad`` kills its worker on its first attempt,
    once the scheduler has its batch's progress report saying that ``bad`` is running (and
    so the children finished before it: ``executors/progress.py``)."""
    _run_file(directory, x)
    marker = Path(directory, "crashed")
    if x == bad and not marker.exists():
        marker.touch()
        _wait_until_reported_running(x)
        os._exit(1)
    return x + 1


def _wait_until_reported_running(index: int) -> None:
    from flowcore.executors.progress import TOPIC, decode

    def running(messages: list[dict[str, Any]]) -> bool:
        return bool(messages) and decode([m["data"] for m in messages])[1] == index

    _wait_for_events(TOPIC, running, f"a progress report of child {index}")


def _wait_for_events(topic: str, seen: Any, what: str, timeout: float = 60) -> None:
    """On a Dask worker, wait until ``seen(the scheduler's events of topic for the running
    call)`` is true; at once in a process pool (no scheduler there)."""
    from distributed import get_client, get_worker

    try:
        key = get_worker().get_current_task()
    except ValueError:  # a process pool
        return
    client = get_client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if seen([m for _, m in client.get_events(topic) if m.get("key") == key]):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not reach the scheduler")


def _crash_every_time(x: int, directory: str, bad: int) -> int:
    """``x + 1``, leaving a file per run; item 0 ends once its batch has reported it
    running (so the report is stale when the next child starts); item ``bad`` kills its
    worker on every attempt, once the scheduler knows the call started (so that Dask does
    not run it again: ``executors/_dask_outcomes.py``)."""
    _run_file(directory, x)
    if x == 0:
        _wait_until_reported_running(0)
    if x == bad:
        _wait_until_start_reported()
        os._exit(1)
    return x + 1


def _wait_until_start_reported() -> None:
    from flowcore.executors._dask_outcomes import _STARTED_TOPIC

    _wait_for_events(_STARTED_TOPIC, bool, "the start of the call")


def _kill_pool_every_time(x: int, directory: str) -> int:
    """``x + 1``, leaving a file per run; item 0 kills its pool process on every attempt
    (leaving a ``died-*`` file first), and the others wait (up to 60 s) until it has done
    so twice, so they are in the pool when it breaks the first two times."""
    _run_file(directory, x)
    if x == 0:
        Path(directory, f"died-{os.getpid()}-{time.monotonic_ns()}").touch()
        os._exit(1)
    wait_until(lambda: len(list(Path(directory).glob("died-*"))) >= 2, what="two deaths")
    return x + 1


crash_every_time = task(_crash_every_time, name="crash_every_time")
kill_pool_every_time = task(_kill_pool_every_time, name="kill_pool_every_time")
crash_in_batch = task(_crash_in_batch, name="crash_in_batch")
crash_in_batch_retried = task(
    _crash_in_batch,
    name="crash_in_batch_retried",
    max_retries=1,
    retry_delay=timedelta(milliseconds=50),
)


@task(max_retries=1, retry_delay=timedelta(0))
def fail_odd_once(x: int, directory: str) -> int:
    """``x * 10``; an odd item fails its first attempt (a marker file remembers it)."""
    _run_file(directory, x)
    marker = Path(directory, f"failed-{x}")
    if x % 2 and not marker.exists():
        marker.touch()
        raise Boom(f"first attempt of {x}")
    return x * 10


@task
def counted_double(x: int, directory: str) -> int:
    _run_file(directory, x)
    return x * 2


@task
def chunked(x: int, batch_size: int) -> int:
    """A task that takes an argument named ``batch_size`` (so ``.map(batch_size=)`` is it)."""
    return x * batch_size
