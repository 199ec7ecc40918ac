"""Progress a long call reports while it runs (``executors/progress.py``), the futures
walker the executors share (``executors/_futures.py``) and a worker process's view of the
session's cancellation event (``executors/_dask_worker.py``), in this process."""

from __future__ import annotations

import time
import uuid
from collections import namedtuple
from concurrent.futures import Future
from typing import Any

from flowcore.executors._dask_worker import cancel_locally, event_is_set
from flowcore.executors._futures import find_futures, map_futures
from flowcore.executors._pools import TaskFuture
from flowcore.executors.progress import FLUSH_EVERY, decode, follow, piece_ended, reporting
from tests.executors import flows


def test_a_call_that_reports_nothing_opens_no_channel() -> None:
    opened: list[int] = []

    def connect() -> Any:
        opened.append(1)
        return lambda data, wait: None

    with reporting(connect):
        pass
    assert opened == []


def test_a_call_that_follows_a_source_opens_one_channel_and_its_pieces_reach_it() -> None:
    opened: list[int] = []
    sent: list[bytes] = []
    finished: list[tuple[int, str]] = []
    asked: list[int] = []

    def source(taken: int) -> tuple[list[Any], Any]:
        asked.append(taken)
        done = len(finished)
        return finished[taken:done], done

    def connect() -> Any:
        opened.append(1)
        return lambda data, wait: sent.append(data)

    with reporting(connect):
        follow(source)
        for index in range(3):
            finished.append((index, f"state {index}"))
        flows.wait_until(lambda: bool(sent), what="a flush")
        finished.append((3, "state 3"))
        flows.wait_until(lambda: len(sent) == 2, what="a second flush")
        time.sleep(3 * FLUSH_EVERY)  # (nothing new: nothing more is sent)
    assert opened == [1]
    assert len(sent) == 2
    assert asked[:2] == [0, 3]
    pieces, marker = decode(sent)
    assert pieces == [(0, "state 0"), (1, "state 1"), (2, "state 2"), (3, "state 3")]
    assert marker == 4


def test_a_piece_reported_running_that_ends_is_reported_at_once() -> None:
    """The driver is never left believing that a finished piece is running: the piece's
    end is sent (waiting) before the call goes on, and the marker is then None."""
    sent: list[tuple[bytes, bool]] = []
    finished: list[tuple[int, str]] = []
    running = [0]  # (moves on only after piece_ended, whenever the flusher reads it)

    def source(taken: int) -> tuple[list[Any], Any]:
        return finished[taken:], running[0]

    with reporting(lambda: lambda data, wait: sent.append((data, wait))):
        follow(source)
        piece_ended(None)  # (nothing reported yet: nothing to say)
        flows.wait_until(lambda: bool(sent), what="a flush")
        assert decode([data for data, _ in sent]) == ([], 0)
        finished.append((0, "state 0"))
        piece_ended(0)
        assert sent[-1][1] is True
        assert decode([data for data, _ in sent]) == ([(0, "state 0")], None)
        count = len(sent)
        piece_ended(0)
        running[0] = 1
        assert len(sent) == count


def test_the_marker_is_the_last_attempt_s_when_dask_ran_a_call_again() -> None:
    """On an existing cluster Dask may run a lost call again under the same key: its
    flushes are read after the first attempt's, whatever their sequence numbers."""
    import pickle

    def flush(attempt: bytes, sequence: int, pieces: list[Any], marker: Any) -> bytes:
        return pickle.dumps((attempt, sequence, pieces, marker))

    first = [flush(b"a", 1, [(0, "s0")], 1), flush(b"a", 2, [(1, "s1")], 2)]
    again = [flush(b"b", 2, [], None), flush(b"b", 1, [(0, "s0")], 1)]  # (out of order)
    assert decode(first + again) == ([(0, "s0"), (1, "s1"), (0, "s0")], None)


def test_following_outside_a_call_goes_nowhere() -> None:
    follow(lambda taken: ([], None))


def test_futures_are_found_and_replaced_in_plain_containers_only() -> None:
    first, second, third, hidden = TaskFuture("a"), Future(), TaskFuture("c"), Future()
    pair = namedtuple("pair", "left right")
    data = {"x": [first, (second, 1)], "y": {third}, "z": pair(hidden, 2), "w": "text"}
    assert find_futures(data, Future) == [first, second, third]
    replaced = map_futures(data, Future, lambda future: id(future))
    assert replaced == {
        "x": [id(first), (id(second), 1)],
        "y": {id(third)},
        "z": pair(hidden, 2),
        "w": "text",
    }
    assert find_futures(replaced, Future) == []


def test_a_worker_told_of_the_end_no_longer_trusts_the_event(local_cluster: Any) -> None:
    """Each worker process runs calls while the session's event is set; once the session
    has told it of the end (``cancel_locally``, as ``DaskExecutor`` does when it stops),
    it runs none, without asking the scheduler (where the event is still set here)."""
    from distributed import Client, Event

    name = f"flowcore-{uuid.uuid4().hex}"
    with Client(local_cluster.scheduler_address, set_as_default=False) as client:
        event = Event(name, client=client)
        event.set()
        workers = sorted(client.scheduler_info()["workers"])

        def on_each_worker() -> list[bool]:
            futures = [
                client.submit(event_is_set, name, workers=[worker], pure=False)
                for worker in workers
            ]
            return [bool(answer) for answer in client.gather(futures)]

        assert on_each_worker() == [True] * len(workers)
        client.run(cancel_locally, name)
        assert on_each_worker() == [False] * len(workers)
        assert event.is_set()
