"""Every ``examples/*.py`` runs as a user would run it, exits 0 and prints what it promises;
every ``python`` block of the README and the concept and migration guides runs too."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

# Lines each example must print (on stdout). A new example needs an entry here.
KEY_OUTPUT: dict[str, list[str]] = {
    "demo.py": [
        "== run 1: flow run Success: All reference tasks succeeded.",
        "extract went through: Running -> Failed -> Retrying -> Running -> Success",
        "parse        Mapped (5 children: 5 Success)",
        "extract      Cached: Result found at task target 2024-03-01/extract.pkl",
        "summarize    Cached: Result found at task target 2024-03-01/summarize.pkl",
        "extract went through: Cached",
        "14 checkpoint files in ",
        "total     634.23",
        "DEMO OK",
    ],
    "triggers_and_signals.py": [
        "flow run: Success: All reference tasks succeeded.",
        "process_messages  Skipped        no new messages",
        "publish_report    TriggerFailed",
        "cleanup           Success",
        "compacted size: 62",
        "flow states: Running -> Success",
        "EXAMPLE OK",
    ],
    "control_flow.py": [
        "flow run: Success: All reference tasks succeeded.",
        "order A-1  digital   link: https://example.org/download/A-1",
        "order B-2  physical  label: mug -> 1 Main St",
        "order C-3  physical  TriggerFailed",
        "shipped: ['link: https://example.org/download/A-1', 'label: mug -> 1 Main St', "
        "'link: https://example.org/download/D-4']",
        "labels written: 1",
        "workspace cleaned up: True",
        "courier: Skipped",
        "express run courier: courier notified about 1 parcel(s)",
        "EXAMPLE OK",
    ],
    "resume.py": [
        "run 1 ",
        ": Failed; fetched 20 pages",
        "run 2 resumes run 1: Success; fetched pages [4, 9, 15]",
        "total: 1900",
        "1 Mapped, 22 Success",
        "3 Failed, 1 Mapped, 18 Success, 1 TriggerFailed",
        "EXAMPLE OK",
    ],
    "mapping.py": [
        "word_count   Mapped   children: ['Success', 'Failed', 'Success', 'Success', 'Success', 'Success']",
        "total words: 13",
        "labels: ['> blog.example.org', '> docs.example.org', '> wiki.example.org']",
        "EXAMPLE OK",
    ],
}


# Pages whose ```python blocks are complete programs (with asserts) that must run as is.
DOCS_WITH_PROGRAMS = [
    "README.md",
    "docs/concepts.md",
    "docs/migrating.md",
    "docs/control_flow.md",
    "docs/resources.md",
    "docs/schedules.md",
    "docs/flow_io.md",
    "docs/caching.md",
    "docs/cache-policies.md",
    "docs/results.md",
    "docs/locking.md",
    "docs/runs.md",
    "docs/executors.md",
]
# Pages with ```python blocks that do not run as is yet; each is being rewritten by its
# owner, and is moved to DOCS_WITH_PROGRAMS when its blocks run.
DOCS_NOT_YET_RUNNABLE: set[str] = set()
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def doc_programs() -> list[tuple[str, str]]:
    """``(page:line, code)`` for every python block of ``DOCS_WITH_PROGRAMS``."""
    found = []
    for page in DOCS_WITH_PROGRAMS:
        text = (ROOT / page).read_text(encoding="utf-8")
        for match in _PYTHON_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page}:{line}", match.group(1)))
    return found


# the examples' runs are recorded (the default) in a store of the test session's own,
# not in the ~/.flowcore/flowcore.db of whoever runs the tests
_RUNS_HOME = tempfile.mkdtemp(prefix="flowcore-example-runs-")
_RUNS_STORE = os.path.join(_RUNS_HOME, "flowcore.db")
atexit.register(shutil.rmtree, _RUNS_HOME, ignore_errors=True)


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.setdefault("FLOWCORE__RUNS__STORE", _RUNS_STORE)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_example_has_expected_output() -> None:
    assert {p.name for p in EXAMPLES} == set(KEY_OUTPUT)


@pytest.mark.parametrize("name", sorted(KEY_OUTPUT))
def test_example_runs(name: str) -> None:
    completed = run_python(str(ROOT / "examples" / name))
    report = f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    assert completed.returncode == 0, report
    for line in KEY_OUTPUT[name]:
        assert line in completed.stdout, f"missing {line!r}\n{report}"
    warnings = [line for line in completed.stderr.splitlines() if " WARNING - " in line]
    assert warnings == [], report


def test_docs_have_programs() -> None:
    pages = {where.split(":")[0] for where, _ in doc_programs()}
    assert pages == set(DOCS_WITH_PROGRAMS)


def test_every_docs_page_with_python_is_run() -> None:
    """A new page under docs/ with ```python blocks must be added to DOCS_WITH_PROGRAMS."""
    with_python = {
        str(page.relative_to(ROOT))
        for page in (ROOT / "docs").glob("*.md")
        if _PYTHON_BLOCK.search(page.read_text(encoding="utf-8"))
    }
    assert with_python - DOCS_NOT_YET_RUNNABLE == set(DOCS_WITH_PROGRAMS) - {"README.md"}


@pytest.mark.parametrize(("where", "code"), doc_programs(), ids=[w for w, _ in doc_programs()])
def test_doc_program_runs(where: str, code: str) -> None:
    completed = run_python("-c", code)
    assert completed.returncode == 0, f"{where} failed:\n{completed.stderr}"
