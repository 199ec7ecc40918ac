"""Import layering of ``flowcore/`` (shared/DESIGN.md, "Layers (imports point down only)").

Every module under ``flowcore/`` is parsed with :mod:`ast`; each ``flowcore`` import is
classified as

* ``module``: runs when the module is imported (module body, class bodies, ``try`` blocks);
* ``lazy``: inside a function, so it runs only when the function is called;
* ``typing``: under ``if TYPE_CHECKING:``, never run.

Rules:

1. ``module`` imports point to the same layer or a lower one (``LAYERS`` below, top first).
2. ``flowcore/executors/*`` import nothing from ``flowcore.engine`` (of any kind).
3. The pure engine modules, results, exceptions, configuration and ``utilities/*`` never
   import ``flowcore.core``, ``flowcore.tasks`` or the runners at module level.
4. ``flowcore/core/*`` and ``flowcore/tasks/*`` import the runners (``engine.runner``,
   ``engine.task_runner``, ``engine.flow_runner``) only lazily, and only in
   ``core/flow.py``'s ``Flow.run``.
5. A lazy import that points *up* is a deliberate exception: each one is listed in
   ``ALLOWED_LAZY_UPWARD`` with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import flowcore

PACKAGE_DIR = Path(flowcore.__file__).resolve().parent

# DESIGN.md's layers, top first. A module belongs to the entry whose prefix matches it most
# specifically; ``EXACT`` entries (package facades) match only that module.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "cli and the package facade",
        # (and flowcore.engine.executors, Prefect 1's old name of flowcore.executors)
        (
            "flowcore.cli",
            "flowcore.ui",
            "=flowcore",
            "=flowcore.__main__",
            "=flowcore.engine.executors",
        ),
    ),
    (
        "flow runner",
        (
            "flowcore.engine.flow_runner",
            "flowcore.engine.flow_run",
            "flowcore.engine.waiting",
            "flowcore.engine.resume",
            "flowcore.engine.batches",
        ),
    ),
    # what both ways of submitting runs (one per call, batches) hand an executor
    ("executor calls", ("flowcore.engine.calls",)),
    ("task runner", ("flowcore.engine.task_runner",)),
    ("runner base", ("flowcore.engine.runner",)),
    ("graph model (core, tasks)", ("flowcore.core", "flowcore.tasks")),
    # records runs; knows States (to name and colour them), not Tasks or runners
    ("run store", ("flowcore.runs",)),
    (
        "caching, transactions, locking",
        (
            "flowcore.caching",
            "flowcore.cache_policies",
            "flowcore.keys",
            "flowcore.records",
            "flowcore.stores",
            "flowcore.policies",
            "flowcore.locks",
            "flowcore.transactions",
            "flowcore.locking",
        ),
    ),  # fmt: skip
    (
        "signals, triggers, cache validators",
        (
            "flowcore.engine.signals",
            "flowcore.triggers",
            "flowcore.engine.cache_validators",
            "=flowcore.engine",
            "flowcore.schedules",
        ),
    ),  # fmt: skip
    (
        "states",
        ("flowcore.engine.state", "flowcore.engine.child_states", "flowcore.engine._stand_in"),
    ),
    ("results", ("flowcore.engine.result", "flowcore.engine.results")),
    # DESIGN.md draws executors apart ("import nothing from engine/"); they hand the context
    # and config to workers and log, so they sit on top of the process-global layer.
    ("executors", ("flowcore.executors",)),
    (
        "configuration and process-global utilities",
        ("flowcore.configuration", "flowcore.utilities"),
    ),
    (
        "pure leaves",
        ("flowcore.exceptions", "flowcore.engine.serializers", "flowcore.utilities.collections"),
    ),
]

RUNNERS = (
    "flowcore.engine.runner",
    "flowcore.engine.task_runner",
    "flowcore.engine.flow_runner",
    "flowcore.engine.flow_run",
)

# rule 3: modules that must not import the graph model or the runners at module level
LOW_MODULES = (
    "flowcore.engine.state", "flowcore.engine.signals", "flowcore.engine.cache_validators",
    "flowcore.triggers", "flowcore.engine.serializers", "flowcore.engine.result",
    "flowcore.engine.results", "flowcore.exceptions", "flowcore.configuration",
    "flowcore.utilities",
)  # fmt: skip
GRAPH_AND_RUNNERS = ("flowcore.core", "flowcore.tasks", *RUNNERS)

# rule 5: (importer, function, imported module) -> why the upward import is lazy
ALLOWED_LAZY_UPWARD: dict[tuple[str, str, str], str] = {
    ("flowcore.core.flow", "Flow.run", "flowcore.engine.flow_run"):
        "Flow.run starts the engine: the one lazy import of a runner from the graph model",
    ("flowcore.engine", "__getattr__", "flowcore.engine.flow_runner"):
        "prefect.engine.FlowRunner compatibility, resolved on first access",
    ("flowcore.engine", "__getattr__", "flowcore.engine.task_runner"):
        "prefect.engine.TaskRunner compatibility, resolved on first access",
    ("flowcore.engine", "_default_class", "flowcore.engine.flow_runner"):
        "prefect.engine.get_default_*_class resolve config paths as flow.run() does (import_object)",
    ("flowcore.utilities.tasks", "task", "flowcore.tasks.core.function"):
        "the @task decorator builds a FunctionTask",
    ("flowcore.utilities.tasks", "_contains_task", "flowcore.core.task"):
        "isinstance check of the Task class without importing the graph at import time",
    ("flowcore.utilities.tasks", "as_task", "flowcore.core.task"):
        "as_task wraps constants and collections into tasks",
    ("flowcore.utilities.tasks", "as_task", "flowcore.tasks.core.collections"):
        "as_task wraps collections into List/Tuple/Set/Dict tasks",
    ("flowcore.utilities.tasks", "as_task", "flowcore.tasks.core.constants"):
        "as_task wraps constants into Constant tasks",
    ("flowcore.utilities.tasks", "pause_task", "flowcore.engine.signals"):
        "pause_task raises PAUSE from inside a running task",
    ("flowcore.utilities.tasks", "apply_map", "flowcore.core.flow"):
        "apply_map builds its sub-graph in a temporary Flow (Prefect 1's prefect.utilities.tasks)",
    ("flowcore.utilities.tasks", "apply_map", "flowcore.core.task"):
        "apply_map checks its arguments against the Task class",
}  # fmt: skip


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    kind: str  # "module" | "lazy" | "typing"
    line: int
    function: str = ""

    def describe(self) -> str:
        where = f" in {self.function}()" if self.function else ""
        return (
            f"{self.importer} (line {self.line}{where}) imports {self.target} "
            f"[{self.kind}; {layer_name(self.importer)} -> {layer_name(self.target)}]"
        )


# -- collecting imports ---------------------------------------------------------------


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             known: set[str]) -> Iterator[str]:  # fmt: skip
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        yield candidate if candidate in known else base


def collect_imports(source: str, importer: str, is_package: bool, known: set[str]) -> list[Import]:
    """The ``flowcore`` imports of one module, each with its kind and enclosing function."""
    found: list[Import] = []

    def visit(node: ast.AST, kind: str, function: str, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _resolve(child, importer, is_package, known):
                    if target == "flowcore" or target.startswith("flowcore."):
                        found.append(Import(importer, target, kind, child.lineno, function))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{scope}.{child.name}" if scope else child.name
                visit(child, "typing" if kind == "typing" else "lazy", function or name, name)
            elif isinstance(child, ast.ClassDef):
                visit(child, kind, function, f"{scope}.{child.name}" if scope else child.name)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), "typing", function, scope)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), kind, function, scope)
            else:
                visit(child, kind, function, scope)

    visit(ast.parse(source), "module", "", "")
    return found


def imports_of_package() -> list[Import]:
    modules = all_modules()
    known = set(modules)
    found: list[Import] = []
    for name, path in modules.items():
        found += collect_imports(path.read_text(), name, path.name == "__init__.py", known)
    return found


IMPORTS = imports_of_package()


# -- layers ---------------------------------------------------------------------------


def layer_index(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (specificity, index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix.startswith("="):
                matched = module == prefix[1:]
                specificity = 1000
            else:
                matched = module == prefix or module.startswith(prefix + ".")
                specificity = prefix.count(".")
            if matched and (best is None or specificity > best[0]):
                best = (specificity, index)
    return None if best is None else best[1]


def layer_name(module: str) -> str:
    index = layer_index(module)
    return "no layer" if index is None else LAYERS[index][0]


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _report(title: str, bad: list[Import]) -> str:
    return title + ":\n  " + "\n  ".join(i.describe() for i in bad)


# -- the collector itself -------------------------------------------------------------


def test_collector_classifies_module_lazy_and_typing_imports() -> None:
    source = """
from __future__ import annotations
import os
from typing import TYPE_CHECKING
import flowcore.engine.state
from flowcore.engine import signals, NotAModule
from . import sibling
from ..core import task as task_module
if TYPE_CHECKING:
    from flowcore.core.flow import Flow
else:
    from flowcore import exceptions
try:
    from flowcore.utilities import context
except ImportError:
    pass
class Thing:
    from flowcore import triggers
    def method(self):
        from flowcore.engine.flow_runner import run_flow
        def inner():
            import flowcore.engine.task_runner
def top():
    from .sibling import helper
"""
    known = {
        "flowcore", "flowcore.engine", "flowcore.engine.state", "flowcore.engine.signals",
        "flowcore.engine.sibling", "flowcore.core", "flowcore.core.task", "flowcore.core.flow",
        "flowcore.exceptions", "flowcore.utilities", "flowcore.utilities.context",
        "flowcore.triggers", "flowcore.engine.flow_runner", "flowcore.engine.task_runner",
    }  # fmt: skip
    found = collect_imports(source, "flowcore.engine.example", False, known)
    summary = [(i.target, i.kind, i.function) for i in found]
    assert summary == [
        ("flowcore.engine.state", "module", ""),
        ("flowcore.engine.signals", "module", ""),
        ("flowcore.engine", "module", ""),
        ("flowcore.engine.sibling", "module", ""),
        ("flowcore.core.task", "module", ""),
        ("flowcore.core.flow", "typing", ""),
        ("flowcore.exceptions", "module", ""),
        ("flowcore.utilities.context", "module", ""),
        ("flowcore.triggers", "module", ""),
        ("flowcore.engine.flow_runner", "lazy", "Thing.method"),
        ("flowcore.engine.task_runner", "lazy", "Thing.method"),
        ("flowcore.engine.sibling", "lazy", "top"),
    ]


def test_relative_imports_in_a_package_init() -> None:
    found = collect_imports(
        "from .state import X\nfrom .. import triggers\n",
        "flowcore.engine",
        True,
        {"flowcore.engine.state", "flowcore.triggers"},
    )
    assert [i.target for i in found] == ["flowcore.engine.state", "flowcore.triggers"]


def test_layer_lookup() -> None:
    assert layer_name("flowcore") == "cli and the package facade"
    assert layer_name("flowcore.engine") == "signals, triggers, cache validators"
    assert layer_name("flowcore.engine.results.local_result") == "results"
    assert layer_name("flowcore.utilities.collections") == "pure leaves"
    assert layer_name("flowcore.utilities.context") == "configuration and process-global utilities"
    assert layer_name("flowcore.tasks.core.function") == "graph model (core, tasks)"
    assert layer_index("flowcore.core.task_arguments") == layer_index("flowcore.core.task")
    assert layer_index("flowcore.engine.task_runner") < layer_index("flowcore.core.task")  # type: ignore[operator]


def test_the_package_has_modules_and_imports() -> None:
    modules = all_modules()
    assert {"flowcore", "flowcore.engine.state", "flowcore.core.flow"} <= set(modules)
    assert any(i.kind == "module" for i in IMPORTS) and any(i.kind == "lazy" for i in IMPORTS)


# -- the rules ------------------------------------------------------------------------


def test_every_module_is_placed_in_a_layer() -> None:
    unplaced = sorted(m for m in all_modules() if layer_index(m) is None)
    assert not unplaced, f"modules in no layer of tests/test_layering.py LAYERS: {unplaced}"


def test_module_level_imports_point_down() -> None:
    bad = [
        i
        for i in IMPORTS
        if i.kind == "module"
        and layer_index(i.target) is not None
        and layer_index(i.target) < layer_index(i.importer)  # type: ignore[operator]
    ]
    assert not bad, _report("module-level imports that point up a layer (DESIGN.md)", bad)


def test_executors_import_nothing_from_the_engine() -> None:
    bad = [
        i
        for i in IMPORTS
        if _within(i.importer, ("flowcore.executors",)) and _within(i.target, ("flowcore.engine",))
    ]
    assert not bad, _report("executors must receive callables, not import the engine", bad)


def test_low_modules_never_import_the_graph_or_runners_at_module_level() -> None:
    bad = [
        i
        for i in IMPORTS
        if i.kind == "module"
        and _within(i.importer, LOW_MODULES)
        and _within(i.target, GRAPH_AND_RUNNERS)
    ]
    assert not bad, _report("pure engine modules / utilities importing core, tasks or runners", bad)


def test_core_and_tasks_import_runners_only_in_flow_run() -> None:
    runner_imports = [
        i
        for i in IMPORTS
        if _within(i.importer, ("flowcore.core", "flowcore.tasks")) and _within(i.target, RUNNERS)
    ]
    bad = [
        i
        for i in runner_imports
        if not (
            i.kind == "lazy" and i.importer == "flowcore.core.flow" and i.function == "Flow.run"
        )
    ]
    assert not bad, _report("the graph model may import a runner only lazily in Flow.run", bad)
    assert [(i.importer, i.function, i.target) for i in runner_imports] == [
        ("flowcore.core.flow", "Flow.run", "flowcore.engine.flow_run")
    ]


def test_lazy_upward_imports_are_deliberate() -> None:
    lazy = [i for i in IMPORTS if i.kind == "lazy"]
    upward = [
        i
        for i in lazy
        if layer_index(i.target) is not None and layer_index(i.target) < layer_index(i.importer)  # type: ignore[operator]
    ]
    unlisted = [i for i in upward if (i.importer, i.function, i.target) not in ALLOWED_LAZY_UPWARD]
    assert not unlisted, _report(
        "lazy imports that point up a layer; add each to ALLOWED_LAZY_UPWARD with its reason "
        "if it is deliberate",
        unlisted,
    )


@pytest.mark.parametrize(
    "module",
    [
        "flowcore.engine.state",
        "flowcore.engine.signals",
        "flowcore.triggers",
        "flowcore.engine.cache_validators",
    ],
)
def test_pure_modules_import_no_runner_even_lazily(module: str) -> None:
    bad = [i for i in IMPORTS if i.importer == module and _within(i.target, GRAPH_AND_RUNNERS)]
    assert not bad, _report(f"{module} reaches into the graph model or runners", bad)
