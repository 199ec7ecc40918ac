"""Fewer garbage collections while flows run (flowcore.utilities.garbage), and flow.run's
use of it (``engine.gc_threshold``)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from flowcore import Flow, task
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.garbage import fewer_collections


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    """Every test starts from the interpreter's defaults and leaves them as they were."""
    saved, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(700, 10, 10)
    gc.enable()
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        if not enabled:
            gc.disable()


def test_the_first_threshold_is_raised_within_and_put_back_after() -> None:
    with fewer_collections(10_000):
        assert gc.get_threshold() == (10_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_failing_block_puts_the_threshold_back() -> None:
    with pytest.raises(RuntimeError), fewer_collections(10_000):
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_nested_blocks_put_it_back_once_the_outermost_ends() -> None:
    with fewer_collections(10_000):
        with fewer_collections(10_000):
            assert gc.get_threshold()[0] == 10_000
        assert gc.get_threshold()[0] == 10_000
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_blocks_in_threads_put_it_back_when_the_last_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[int, ...]] = []

    def second() -> None:
        first_in.wait(10)
        with fewer_collections(10_000):
            second_in.set()
            first_out.wait(10)
            seen.append(gc.get_threshold())  # the first block has ended, this one not

    thread = threading.Thread(target=second)
    thread.start()
    with fewer_collections(10_000):
        first_in.set()
        second_in.wait(10)
    first_out.set()
    thread.join(10)
    assert seen == [(10_000, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)


def test_what_the_user_chose_is_left_alone() -> None:
    gc.set_threshold(50_000, 20, 20)  # higher already
    with fewer_collections(10_000):
        assert gc.get_threshold() == (50_000, 20, 20)
    assert gc.get_threshold() == (50_000, 20, 20)

    gc.set_threshold(700, 10, 10)
    gc.disable()  # a collector the user turned off stays off, at its threshold
    with fewer_collections(10_000):
        assert gc.get_threshold() == (700, 10, 10) and not gc.isenabled()
    gc.enable()

    with fewer_collections(10_000):
        gc.set_threshold(2_000, 5, 5)  # changed by the user's code during the block
    assert gc.get_threshold() == (2_000, 5, 5)

    gc.set_threshold(700, 10, 10)
    with fewer_collections(0):  # 0: leave the collector alone
        assert gc.get_threshold() == (700, 10, 10)


def test_flow_run_raises_it_while_its_tasks_run() -> None:
    @task
    def threshold() -> int:
        return gc.get_threshold()[0]

    with Flow("gc") as flow:
        seen = threshold()

    assert flow.run().result[seen].result == 10_000
    assert gc.get_threshold() == (700, 10, 10)
    with set_temporary_config({"engine.gc_threshold": 0}):
        assert flow.run().result[seen].result == 700
    with set_temporary_config({"engine.gc_threshold": 25_000}):
        assert flow.run().result[seen].result == 25_000
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("bad", [-1, "many", 1.5, True])
def test_a_bad_engine_gc_threshold_is_a_clear_error(bad: object) -> None:
    @task
    def one() -> int:
        return 1

    with Flow("gc-bad") as flow:
        one()

    with (
        set_temporary_config({"engine.gc_threshold": bad}),
        pytest.raises(ValueError, match=r"engine\.gc_threshold must be a whole number"),
    ):
        flow.run()
    assert gc.get_threshold() == (700, 10, 10)
