"""TASK_SOURCE follows the code a task uses: edits to a helper it calls, a module constant it
reads or a captured closure value change the key (and comments or layout do not), checked
with each run in a new process, as a user edits and re-runs a script."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flowcore.caching.code import code_digest
from flowcore.core.task import Task

HELPERS = """
K = {k}

def helper(x):
    {helper_body}
"""

FLOW = """
import sys
sys.path.insert(0, {here!r})
from flowcore import Flow, task
from flowcore import cache_policies as cp
import helpers

@task(cache_policy=cp.INPUTS + cp.TASK_SOURCE)
def compute(x):
    return helpers.helper(x) * helpers.K

def make_scaler(scale):
    @task(cache_policy=cp.INPUTS + cp.TASK_SOURCE, name="scale-" + str(scale))
    def scaled(x):
        return x * scale
    return scaled

with Flow("code-keys") as flow:
    out = compute(4)
    two = make_scaler(2)(10)
    three = make_scaler({scale})(10)

state = flow.run()
print("RESULT", state.result[out].result, type(state.result[out]).__name__,
      state.result[two].result, state.result[three].result)
"""


def _run(tmp_path: Path, k: int = 10, helper_body: str = "return x", scale: int = 3) -> list[str]:
    (tmp_path / "helpers.py").write_text(HELPERS.format(k=k, helper_body=helper_body))
    (tmp_path / "flow.py").write_text(FLOW.format(here=str(tmp_path), scale=scale))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLOWCORE__HOME_DIR": str(tmp_path / "home"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [sys.executable, str(tmp_path / "flow.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return next(line for line in done.stdout.splitlines() if line.startswith("RESULT")).split()[1:]


@pytest.mark.slow
def test_edits_to_helpers_constants_and_closures_change_the_key(tmp_path: Path) -> None:
    assert _run(tmp_path) == ["40", "Success", "20", "30"]
    assert _run(tmp_path) == ["40", "Cached", "20", "30"]
    # a comment and blank lines in the helper: same code, a hit
    assert _run(tmp_path, helper_body="# the identity\n\n    return x") == [
        "40",
        "Cached",
        "20",
        "30",
    ]
    # the helper's body changed: the right value, not the cached 40
    assert _run(tmp_path, helper_body="return x + 1") == ["50", "Success", "20", "30"]
    # the module constant changed
    assert _run(tmp_path, k=100, helper_body="return x + 1") == ["500", "Success", "20", "30"]
    # two tasks from one closure factory with different captured values never share a key
    assert _run(tmp_path, k=100, helper_body="return x + 1", scale=2) == [
        "500",
        "Cached",
        "20",
        "20",
    ]


def test_code_digest_follows_globals_and_closures() -> None:
    namespace: dict[str, object] = {}
    exec(  # noqa: S102 - building functions whose globals the test controls
        textwrap.dedent("""
            LIMIT = 3
            def inner(x):
                return x + LIMIT
            def outer(x):
                return inner(x) * 2
        """),
        namespace,
    )
    outer = namespace["outer"]
    first = code_digest(outer, depth=4)
    namespace["LIMIT"] = 4
    from flowcore.caching import code as code_module

    code_module._MEMO.clear()
    assert code_digest(outer, depth=4) != first

    def factory(value: int) -> object:
        def captured() -> int:
            return value

        return captured

    assert code_digest(factory(1)) != code_digest(factory(2))
    assert code_digest(factory(1)) == code_digest(factory(1))


def test_installed_code_counts_by_version() -> None:
    import json as stdlib_json

    import dask

    def uses_dask(x: object) -> object:
        return dask.delayed(x), stdlib_json.dumps(1)

    from flowcore.caching.code import _describe

    described = _describe(uses_dask, 3, set())
    text = repr(described)
    assert "('dist', 'dask'," in text and "('stdlib'," in text
    assert "def " not in text  # no source of installed code


def test_cache_version_is_a_part_of_the_key() -> None:
    from flowcore import cache_policies as cp
    from flowcore import task

    first = task(cache_version="1")(lambda x: x)
    second = task(cache_version="2")(lambda x: x)
    context = cp.KeyContext(first, None, None, {})
    key_one = cp.TASK_SOURCE.compute_key(context, {})
    key_two = cp.TASK_SOURCE.compute_key(cp.KeyContext(second, None, None, {}), {})
    assert key_one != key_two
    with pytest.raises(TypeError, match="cache_version"):
        task(cache_version=["x"])(lambda: 1)


USED_CODE = """
import functools

FACTOR = {factor}
EXTRA = {extra}
UNUSED = {unused}


@functools.lru_cache(maxsize=None)
def cached_helper(x):
    return x * {lru}


def _mul(x, k):
    return x * k + {partial}


part = functools.partial(_mul, k={keyword})


class Base:
    def offset(self):
        return {base}


class Scaler(Base):
    def scale(self, x):
        return x * FACTOR + self.extra + self.offset() + len([Scaler])

    @property
    def extra(self):
        return EXTRA


class Doubler:
    def double(self, x):
        return is_even(x) * FACTOR


def is_even(n):
    return n == 0 or is_odd(n - 1)


def is_odd(n):
    return n != 0 and is_even(n - 1)


bound_double = Doubler().double


def times(f):
    @functools.wraps(f)
    def wrapper(x):
        return {decorator} * f(x)

    return wrapper


@times
def decorated(x):
    return x + {decorated}


def uses_lru(x):
    return cached_helper(x)


def uses_partial(x):
    return part(x)


def uses_class(x):
    return Scaler().scale(x)


def uses_bound_method(x):
    return bound_double(x)


def uses_own_decorator(x):
    return decorated(x)
"""

BASE = {
    "factor": 2,
    "extra": 1,
    "unused": 0,
    "lru": 1,
    "partial": 0,
    "keyword": 2,
    "base": 0,
    "decorator": 2,
    "decorated": 0,
}
_VARIANTS = itertools.count()


def _digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, **edits: int) -> str:
    """``code_digest`` of one function of USED_CODE, loaded as a new ``helpers`` module from a
    new file: new objects, so nothing memoised for an earlier version counts."""
    folder = tmp_path / f"v{next(_VARIANTS)}"
    folder.mkdir()
    path = folder / "helpers.py"
    path.write_text(USED_CODE.format(**{**BASE, **edits}))
    spec = importlib.util.spec_from_file_location("helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "helpers", module)  # where inspect finds a class's file
    spec.loader.exec_module(module)
    function: Any = getattr(module, name)
    return code_digest(function)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("uses_lru", {"lru": 3}),  # a helper behind functools.lru_cache
        ("uses_partial", {"partial": 5}),  # the function behind functools.partial
        ("uses_partial", {"keyword": 3}),  # an argument functools.partial binds
        ("uses_class", {"factor": 3}),  # a constant a method of the class reads
        ("uses_class", {"extra": 4}),  # a constant a property of the class reads
        ("uses_class", {"base": 7}),  # a method of the class's base class
        ("uses_bound_method", {"factor": 3}),  # a constant a bound method reads
        ("uses_own_decorator", {"decorator": 3}),  # the wrapper of the user's own decorator
        ("uses_own_decorator", {"decorated": 1}),  # the function it wraps
    ],
)
def test_code_behind_wrappers_partials_and_classes_changes_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, edit: dict[str, int]
) -> None:
    before = _digest(tmp_path, monkeypatch, name)
    assert _digest(tmp_path, monkeypatch, name) == before  # the same code, the same key
    assert _digest(tmp_path, monkeypatch, name, unused=9) == before  # a name it does not use
    assert _digest(tmp_path, monkeypatch, name, **edit) != before


def test_classes_and_recursion_that_refer_to_themselves_are_followed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaler.scale reads Scaler; is_even and is_odd call each other; Doubler.double calls them
    from flowcore.caching.code import _describe

    digest = _digest(tmp_path, monkeypatch, "uses_class")
    scaler = sys.modules["helpers"].Scaler
    text = repr(_describe(scaler, 6, set()))
    assert text.count("'function', 'helpers.Scaler.scale'") == 1
    assert "('Scaler', ('code', 'helpers.Scaler', 'seen'))" in text
    assert _digest(tmp_path, monkeypatch, "uses_class") == digest
    assert _digest(tmp_path, monkeypatch, "uses_bound_method") != _digest(
        tmp_path, monkeypatch, "uses_bound_method", factor=5
    )


EXECUTORS = """
import os
import sys

from flowcore import Flow, Parameter, Task, task
from flowcore import cache_policies as cp
from flowcore.executors import LocalDaskExecutor, LocalExecutor

K = 7


def helper(x):
    return x + K


@task(cache_policy=cp.INPUTS + cp.TASK_SOURCE)
def shifted(x):
    return helper(x)


class Mult(Task):
    def __init__(self, factor, **kwargs):
        self.factor = factor
        super().__init__(**kwargs)

    def run(self, x):
        return helper(x) * self.factor


with Flow("executors") as flow:
    xs = Parameter("xs")
    mapped = shifted.map(xs)
    single = shifted(100)
    tripled = Mult(3, cache_policy=cp.INPUTS + cp.TASK_SOURCE)(1)

if __name__ == "__main__":
    for name in sys.argv[1:]:
        executor = (
            LocalDaskExecutor("processes", num_workers=2) if name == "processes" else LocalExecutor()
        )
        state = flow.run(xs=[1, 2], executor=executor, cache_store=os.environ["STORE"])
        children = [type(s).__name__ for s in state.result[mapped].map_states]
        print("RESULT", name, *children, *(
            type(state.result[t]).__name__ for t in (single, tripled)
        ), state.result[tripled].result)
"""


def _run_on(tmp_path: Path, *executors: str) -> list[list[str]]:
    tmp_path.mkdir(exist_ok=True)
    script = tmp_path / "executors_flow.py"
    script.write_text(EXECUTORS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "FLOWCORE__HOME_DIR": str(tmp_path / "home"),
        "FLOWCORE__RUNS__STORE": "none",
        "STORE": str(tmp_path / "store"),
    }
    done = subprocess.run(
        [sys.executable, str(script), *executors],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "code changed" not in done.stderr
    return [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("RESULT")]


@pytest.mark.slow
def test_a_process_pool_and_the_local_executor_hit_each_other_s_records(tmp_path: Path) -> None:
    """A flow file's code reaches a pool worker by value, without its source: the worker
    gives TASK_SOURCE the key the process that read the file gives it."""
    ran = ["Success"] * 4
    hit = ["Cached"] * 4
    assert _run_on(tmp_path, "processes", "local") == [
        ["processes", *ran, "24"],
        ["local", *hit, "24"],
    ]
    assert _run_on(tmp_path / "other", "local", "processes") == [
        ["local", *ran, "24"],
        ["processes", *hit, "24"],
    ]


def test_a_carried_digest_is_used_only_where_the_source_cannot_be_read() -> None:
    import cloudpickle

    from flowcore.caching.code import carried_digest

    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(  # noqa: S102 - a function cloudpickle sends by value, as a flow file's
        compile("def work(x):\n    return x + 1\n", str(Path(__file__)), "exec"), namespace
    )
    here = namespace["work"]
    travelled = cloudpickle.loads(cloudpickle.dumps(here))
    assert travelled.__code__.co_filename == "<dynamic-code>"
    carried = carried_digest(here)
    assert code_digest(travelled, carried=carried) == code_digest(here) == carried[1]
    assert code_digest(travelled) != code_digest(here)  # what a worker computed before

    other = dict(namespace)
    exec("def work(x):\n    return x + 2\n", other)  # noqa: S102 - other code, no source
    assert code_digest(other["work"], carried=carried) != carried[1]
    assert code_digest(here, carried=("a", "b")) == carried[1]  # readable: its own digest


class _Scaled(Task):
    def __init__(self, factor: int, **kwargs: Any) -> None:
        self.factor = factor
        super().__init__(**kwargs)

    def run(self, x: int) -> int:
        return x * self.factor


def test_a_carried_code_digest_is_made_once_per_code_and_its_key_once_per_task_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import copy
    import pickle

    from flowcore import cache_policies as cp
    from flowcore.caching import code as code_module

    bytecodes: list[Any] = []
    real_bytecode = code_module._bytecode
    monkeypatch.setattr(
        code_module, "_bytecode", lambda code: bytecodes.append(code) or real_bytecode(code)
    )
    monkeypatch.setattr(code_module, "_BYTECODES", {})
    scaled = _Scaled(2, cache_policy=cp.INPUTS + cp.TASK_SOURCE)
    received = [pickle.loads(pickle.dumps(scaled)) for _ in range(3)] + [copy.copy(scaled)]
    assert len(bytecodes) == 1  # the run method's bytecode, for the first pickle only
    assert all("_carried_code" in vars(task_) for task_ in received)

    digests: list[Any] = []
    real_digest = cp.code_digest
    monkeypatch.setattr(
        cp, "code_digest", lambda fn, **kw: digests.append(fn) or real_digest(fn, **kw)
    )
    keys = {cp.TASK_SOURCE.compute_key(cp.KeyContext(t, "r", "f", {}), {}) for t in received}
    assert len(keys) == 1 and len(digests) <= 1  # carried: one code key, then the memo
