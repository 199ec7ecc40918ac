"""TASK_SOURCE follows the code a task uses: edits to a helper it calls, a module constant it
reads or a captured closure value change the key (and comments or layout do not), checked
with each run in a new process, as a user edits and re-runs a script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowcore.caching.code import code_digest

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
