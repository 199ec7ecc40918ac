"""How DaskExecutor packs calls: futures lifted out, repeated large objects shared per batch."""

from __future__ import annotations

from typing import Any

from flowcore.executors import _dask_packing
from flowcore.executors._dask_packing import SHARE_MIN_BYTES, BatchPacker, unpack


class FakeFuture:
    """Stands in for ``distributed.Future``: the packer only reads ``key``."""

    def __init__(self, key: str) -> None:
        self.key = key


class Big:
    def __init__(self, label: str) -> None:
        self.label = label
        self.payload = list(range(SHARE_MIN_BYTES))


class Small:
    def __init__(self) -> None:
        self.n = 1


def _call(packer: BatchPacker, *args: Any) -> tuple[bytes, list[Any], list[str]]:
    return packer.pack(len, args, {})


def test_futures_become_dependencies() -> None:
    packer = BatchPacker(FakeFuture)
    first, second = FakeFuture("a"), FakeFuture("b")
    payload, deps, tokens = packer.pack(sorted, ({"x": first, "y": [second, first]},), {})
    assert deps == [first, second]
    assert tokens == []
    fn, args, kwargs = unpack(payload, ["A", "B"], [], [])
    assert fn is sorted and args == ({"x": "A", "y": ["B", "A"]},) and kwargs == {}


def test_code_plain_pickle_cannot_handle_goes_through_cloudpickle() -> None:
    packer = BatchPacker(FakeFuture)
    offset = 10
    payload, deps, tokens = packer.pack(lambda x: x + offset, (FakeFuture("a"),), {})
    fn, args, _ = unpack(payload, [5], tokens, [])
    assert fn(*args) == 15


def test_an_object_repeated_across_calls_is_shared_from_its_second_call() -> None:
    packer = BatchPacker(FakeFuture)
    big = Big("task")
    first = _call(packer, big, 1)
    second = _call(packer, big, 2)
    third = _call(packer, big, 3)
    assert first[2] == []  # first sighting: inline
    assert second[2] == third[2] and len(second[2]) == 1
    [token] = second[2]
    assert token.startswith("flowcore-shared-Big-")
    assert len(second[0]) < len(first[0]) - SHARE_MIN_BYTES
    blobs = [packer.blobs[token]]
    _, args_two, _ = unpack(second[0], [], second[2], blobs)
    _, args_three, _ = unpack(third[0], [], third[2], blobs)
    assert args_two[0].label == "task" and args_two[1] == 2
    assert args_two[0] is args_three[0]  # one object per worker process, as in one process


def test_identity_within_a_call_is_kept() -> None:
    packer = BatchPacker(FakeFuture)
    big = Big("task")
    _call(packer, [big])
    payload, deps, tokens = _call(packer, big, {"edge": big})
    _, args, _ = unpack(payload, deps, tokens, [packer.blobs[t] for t in tokens])
    assert args[0] is args[1]["edge"]


def test_a_dict_argument_repeated_across_calls_is_shared() -> None:
    packer = BatchPacker(FakeFuture)
    context = {"config": list(range(SHARE_MIN_BYTES)), "flow_name": "f"}
    _call(packer, context, {"inner": context})
    payload, deps, tokens = _call(packer, context, {"inner": context})
    assert len(tokens) == 1 and tokens[0].startswith("flowcore-shared-dict-")
    _, args, _ = unpack(payload, deps, tokens, [packer.blobs[t] for t in tokens])
    assert args[0] == context and args[1]["inner"] is args[0]
    nested = BatchPacker(FakeFuture)
    for _ in range(2):
        assert _call(nested, {"inner": context})[2] == []  # only arguments themselves


def test_a_dict_keyed_by_objects_keeps_its_keys_the_call_s_own() -> None:
    """A batch's upstream states and its mapped upstreams' children are two dicts keyed
    by the same Edges (equal when their tasks are the same objects): shared whole, the
    first was a copy apart from the second on the worker, and looking one up in the other
    failed (KeyError)."""
    packer = BatchPacker(FakeFuture)
    edge = Big("edge")
    states = {edge: Big("state")}
    for n in range(2):
        payload, deps, tokens = _call(packer, states, {edge: [FakeFuture(str(n))]})
    _, args, _ = unpack(payload, ["child"], tokens, [packer.blobs[t] for t in tokens])
    [(key, state)] = args[0].items()
    assert key is next(iter(args[1]))
    assert state.label == "state" and args[1][key] == ["child"]


def test_small_objects_and_objects_holding_futures_stay_inline() -> None:
    packer = BatchPacker(FakeFuture)
    small = Small()
    holder = Big("holder")
    holder.payload.append(FakeFuture("k"))  # type: ignore[arg-type]
    for n in range(3):
        payload, deps, tokens = _call(packer, small, holder, n)
        assert tokens == []
        assert [d.key for d in deps] == ["k"]
    assert packer.blobs == {}


def test_each_batch_shares_its_own_copy() -> None:
    big = Big("before")
    first_batch = BatchPacker(FakeFuture)
    _call(first_batch, big)
    _call(first_batch, big)
    big.label = "after"
    second_batch = BatchPacker(FakeFuture)
    _call(second_batch, big)
    payload, deps, tokens = _call(second_batch, big)
    _, args, _ = unpack(payload, deps, tokens, [second_batch.blobs[t] for t in tokens])
    assert args[0].label == "after"


def test_the_worker_cache_is_bounded() -> None:
    packer = BatchPacker(FakeFuture)
    items = [Big(str(n)) for n in range(_dask_packing._CACHE_SIZE + 5)]
    for item in items:
        _call(packer, item)
        payload, deps, tokens = _call(packer, item)
        unpack(payload, deps, tokens, [packer.blobs[t] for t in tokens])
    assert len(_dask_packing._cache) <= _dask_packing._CACHE_SIZE


_SCRIPT = """
import pickle, sys
from flowcore import Task
from flowcore.executors._dask_packing import BatchPacker

class Mult(Task):
    def __init__(self, factor):
        self.factor = factor
        super().__init__(name="mult")

    def run(self, x):
        return x * self.factor

class Future:
    pass

payload, deps, tokens = BatchPacker(Future).pack(Mult(3).run, (7,), {})
sys.stdout.buffer.write(pickle.dumps((payload, deps, tokens)))
"""

_LOAD = """
import pickle, sys
from flowcore.executors._dask_packing import unpack

payload, deps, tokens = pickle.loads(sys.stdin.buffer.read())
fn, args, kwargs = unpack(payload, deps, tokens, [])
print(fn(*args, **kwargs))
"""


def test_a_task_class_of_the_flow_s_script_loads_where_the_script_is_not(tmp_path: Any) -> None:
    # the standard pickler named it __main__.Mult, which a Dask worker started elsewhere
    # (not from the script) cannot import: it goes by value, with cloudpickle
    import subprocess
    import sys

    script = tmp_path / "flow_script.py"
    script.write_text(_SCRIPT)
    packed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, check=True, timeout=60
    ).stdout
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD], input=packed, capture_output=True, timeout=60,
        cwd=tmp_path.parent,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr.decode()[-2000:]
    assert loaded.stdout.decode().strip() == "21"
