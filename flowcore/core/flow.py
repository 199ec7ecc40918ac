"""``Flow``: a graph of tasks, built functionally (``with Flow(...)``) or imperatively.

The graph is ``tasks`` (a set), ``edges`` (a set of :class:`Edge`) and ``constants``
(``{task: {argument: value}}`` for constant inputs, which need no task). Upstream and
downstream edges are indexed as they are added, so graph queries cost O(degree), and the
topological order is memoised until the graph changes. Independent tasks run in the
order they were added (Prefect 1's order depended on object ids).

``Flow.run`` hands over to the engine (``engine.flow_run.run_flow``), imported lazily
in that one place: the graph model does not depend on the runners.
"""

from __future__ import annotations

import heapq
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flowcore import configuration
from flowcore.core.edge import Edge
from flowcore.core.task import Task
from flowcore.utilities import context as _context
from flowcore.utilities.logging import NamedLogger

if TYPE_CHECKING:
    from flowcore.core.parameter import Parameter
    from flowcore.engine.result import Result
    from flowcore.engine.state import State

__all__ = ["Flow"]


def _is_engine_memo(key: Any) -> bool:
    """Whether a ``_cache`` key is one the engine memoises on the flow (``"flowcore.*"``):
    those are rebuilt after unpickling rather than pickled with the flow."""
    return isinstance(key, str) and key.startswith("flowcore.")


def _check_not_in_mapped_context() -> None:
    if _context.current().get("mapped"):
        raise ValueError(
            "Cannot set `mapped=True` when running from inside a mapped context. The "
            "function given to apply_map already runs once per element."
        )


class Flow:
    """A named graph of tasks.

    Args:
        name: the flow's name (required).
        schedule: a ``flowcore.schedules.Schedule`` used by ``flow.run()``.
        executor: the executor ``flow.run()`` uses when none is given.
        run_config, storage: accepted for Prefect 1 compatibility; unused locally.
        tasks: tasks to add.
        edges: edges to add.
        reference_tasks: the tasks whose states decide the flow's state.
        state_handlers: ``fn(flow, old_state, new_state) -> State | None`` callables.
        on_failure: ``fn(flow, state)`` called when the flow run fails.
        validate: validate the flow after adding ``tasks`` and ``edges``.
        result: the default ``Result`` of tasks that have none.
        terminal_state_handler: ``fn(flow, state, reference_task_states) -> State | None``.
        cache_store: where output-cache records live for this flow's runs: a
            ``flowcore.caching`` store, ``"memory"``, a directory, ``"s3://bucket/prefix"``
            or ``"gs://bucket/prefix"`` (default: config ``caching.store``).
    """

    def __init__(
        self,
        name: str,
        schedule: Any = None,
        executor: Any = None,
        run_config: Any = None,
        storage: Any = None,
        tasks: Iterable[Task] | None = None,
        edges: Iterable[Edge] | None = None,
        reference_tasks: Iterable[Task] | None = None,
        state_handlers: list[Callable[..., State | None]] | None = None,
        on_failure: Callable[[Flow, State], None] | None = None,
        validate: bool | None = None,
        result: Result | None = None,
        terminal_state_handler: Callable[..., State | None] | None = None,
        cache_store: Any = None,
    ) -> None:
        if not name:
            raise ValueError("A name must be provided for the flow. E.g. Flow('my-flow').")
        if not isinstance(name, str):
            raise TypeError(
                f"A flow's name is a str; Flow() got {type(name).__name__} {name!r}. E.g. "
                "Flow('my-flow')."
            )
        self.name = name
        self.schedule = schedule
        self.executor = executor
        self.run_config = run_config
        self.storage = storage
        self.result = result
        self.terminal_state_handler = terminal_state_handler
        self.cache_store = cache_store
        self.tasks: set[Task] = set()
        self.edges: set[Edge] = set()
        self.constants: defaultdict[Task, dict[str, Any]] = defaultdict(dict)
        self.slugs: dict[Task, str] = {}
        self._slug_set: set[str] = set()
        self._order: dict[Task, int] = {}
        self._upstream: dict[Task, dict[Edge, None]] = {}
        self._downstream: dict[Task, dict[Edge, None]] = {}
        self._slug_counts: dict[str, int] = {}
        self._reference_tasks: set[Task] = set()
        self._cache: dict[Any, Any] = {}
        if state_handlers is not None and not isinstance(state_handlers, (list, tuple)):
            raise TypeError(
                f"state_handlers should be iterable. Flow {name!r} got a "
                f"{type(state_handlers).__name__}; pass a list of callables."
            )
        self.state_handlers = list(state_handlers or [])
        if on_failure is not None:
            from flowcore.core.task_arguments import failure_callback

            self.state_handlers.append(failure_callback(on_failure))  # type: ignore[arg-type]
        for task in tasks or ():
            self.add_task(task)
        self._add_edges(edges or (), validate)
        self.set_reference_tasks(reference_tasks or [])
        if validate:
            self.validate()

    # -- identity ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f'<Flow: name="{self.name}">'

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        assert isinstance(other, Flow)
        return (
            self.name == other.name
            and self.tasks == other.tasks
            and self.edges == other.edges
            and self.reference_tasks() == other.reference_tasks()
        )

    __hash__ = None  # type: ignore[assignment]

    terminal_state_handler: Callable[..., State | None] | None = None
    """A class-level default too, so flows pickled before the attribute existed run."""

    def __iter__(self) -> Iterator[Task]:
        return iter(self.sorted_tasks())

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_scopes", None)
        state["_cache"] = {
            key: value for key, value in self._cache.items() if not _is_engine_memo(key)
        }
        return state

    logger = NamedLogger()

    # -- the functional API -----------------------------------------------------------------

    def __enter__(self) -> Flow:
        scope = _context.context(flow=self, _unused_task_tracker=set())
        self._scopes = getattr(self, "_scopes", [])
        self._scopes.append(scope)
        scope.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        tracker = _context.current().get("_unused_task_tracker") or set()
        self._scopes.pop().__exit__(*exc)
        unused = [t for t in tracker if t not in self.tasks and not t._is_constant]
        if unused and exc[0] is None:
            names = ", ".join(sorted(repr(t) for t in unused))
            warnings.warn(
                f"Tasks were created but not added to the flow: {names}. Call them with "
                "their inputs, pass them to another task, or add them with flow.add_task().",
                stacklevel=2,
            )

    # -- building ---------------------------------------------------------------------------

    def _add_edges(self, edges: Iterable[Edge], validate: bool | None = False) -> None:
        """Add copies of ``edges`` (each an ``Edge`` of this flow's tasks), each checked as
        ``add_edge(validate=validate)`` checks it (None: ``flows.eager_edge_validation``)."""
        for edge in edges:
            self.add_edge(
                edge.upstream_task,
                edge.downstream_task,
                key=edge.key,
                mapped=edge.mapped,
                flattened=edge.flattened,
                validate=validate,
            )

    def add_task(self, task: Task) -> Task:
        """Add ``task`` (idempotent); give it a slug unique within the flow."""
        if not isinstance(task, Task):
            raise TypeError(
                f"Tasks must be Task instances (received {type(task)}). flow.add_task() "
                f"takes a Task, got {task!r}."
            )
        if task in self._order:
            return task
        if task.slug is not None and task.slug in self._slug_set:
            raise ValueError(
                f'A task with the slug "{task.slug}" already exists in this flow. '
                f"Give one of them another name or slug (flow {self.name!r})."
            )
        self.tasks.add(task)
        self._order[task] = len(self._order)
        self._upstream[task] = {}
        self._downstream[task] = {}
        slug = task.slug if task.slug is not None else self._generate_slug(task)
        self.slugs[task] = slug
        self._slug_set.add(slug)
        self._cache.clear()
        if not task._skip_case_attach:
            scope = _context.current()
            for key in ("case", "resource", "transaction"):
                owner = scope.get(key)
                if owner is not None:
                    owner.add_task(task, self)
        return task

    def _generate_slug(self, task: Task) -> str:
        base = f"{task.name}-" + "-".join(sorted(task.tags))
        while True:
            count = self._slug_counts.get(base, 0) + 1
            self._slug_counts[base] = count
            slug = f"{base}{'' if base.endswith('-') else '-'}{count}"
            if slug not in self._slug_set:
                return slug

    def add_edge(
        self,
        upstream_task: Any,
        downstream_task: Any,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
        validate: bool | None = None,
    ) -> Edge:
        """Add ``upstream_task -> downstream_task``; constants on plain keyed edges become
        ``flow.constants`` entries instead of tasks."""
        if validate is None:
            validate = configuration.config.flows.eager_edge_validation
        if mapped:
            _check_not_in_mapped_context()
        if getattr(downstream_task, "_is_root_only", False):
            raise ValueError(
                "Parameters must be root tasks and can not have upstream dependencies. "
                f"{downstream_task!r} was given the upstream {upstream_task!r}."
            )
        edge = Edge(
            upstream_task, downstream_task, key=key, mapped=mapped, flattened=flattened, flow=self
        )
        upstream, downstream = edge.upstream_task, edge.downstream_task
        if upstream._is_constant and key is not None and not edge.mapped and not edge.flattened:
            self.add_task(downstream)
            self.constants[downstream][key] = upstream.value  # type: ignore[attr-defined]
            self._cache.clear()
            return edge
        self.add_task(upstream)
        self.add_task(downstream)
        if validate and key is not None:
            self._check_key(downstream, key)
        if edge not in self.edges:
            self.edges.add(edge)
            self._downstream[upstream][edge] = None
            self._upstream[downstream][edge] = None
            self._cache.clear()
        if validate:
            self._check_graph()
        return edge

    def _check_key(self, task: Task, key: str) -> None:
        bound = {e.key for e in self._upstream[task]} | set(self.constants.get(task, ()))
        if key in bound:
            raise ValueError(
                f'Argument "{key}" for task {task} has already been assigned in this flow. '
                "If you are trying to call the task again with new arguments, call "
                "Task.copy() before adding the result to this flow."
            )
        try:
            task._run_signature().bind_partial(**{key: None})
        except TypeError as exc:
            raise TypeError(f"{task!r} has no argument {key!r}: {exc}") from None

    def set_dependencies(
        self,
        task: Any,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        """Add ``task`` with its state-only upstreams, downstreams and keyword inputs."""
        from flowcore.utilities.tasks import as_task

        if mapped:
            _check_not_in_mapped_context()
        task = self.add_task(as_task(task, flow=self))
        for upstream in upstream_tasks or ():
            self.add_edge(upstream, task, mapped=mapped, validate=validate)
        for downstream in downstream_tasks or ():
            self.add_edge(task, downstream, validate=validate)
        for key, value in (keyword_tasks or {}).items():
            self.add_edge(value, task, key=key, mapped=mapped, validate=validate)
        if mapped:
            from flowcore.core._preflight import mapped_template_problems

            for problem in mapped_template_problems(self, task):
                raise problem.error

    def chain(self, *tasks: Task, validate: bool | None = None) -> list[Edge]:
        """State edges ``t0 -> t1 -> ... -> tn``."""
        return [self.add_edge(a, b, validate=validate) for a, b in zip(tasks, tasks[1:])]

    def update(
        self,
        flow: Flow,
        merge_parameters: bool = False,
        validate: bool | None = None,
        merge_reference_tasks: bool = False,
    ) -> None:
        """Copy ``flow``'s tasks, edges and constants into this flow.

        With ``merge_parameters``, each Parameter of this flow that has a same-named
        Parameter in ``flow`` is replaced by that one (as Prefect 1 does), and the result
        is validated. With ``merge_reference_tasks``, the reference tasks become the union
        of both flows' reference tasks.
        """
        if merge_parameters:
            validate = True
            incoming = {p.name: p for p in flow.parameters()}
            mine = self.parameters()
            for param in [p for p in self._order if p in mine]:
                if param.name in incoming and incoming[param.name] is not param:
                    self.replace(param, incoming[param.name], validate=False)
        for task in flow._order:
            self.add_task(task)
        self._add_edges(flow.edges, validate)
        for task, values in flow.constants.items():
            self.constants[task].update(values)
        self._cache.clear()
        if merge_reference_tasks:
            self.set_reference_tasks(self.reference_tasks() | flow.reference_tasks())
        if validate or (validate is None and configuration.config.flows.eager_edge_validation):
            self._check_graph()

    def replace(self, old: Task, new: Any, validate: bool = True) -> None:
        """Put ``new`` in ``old``'s place, with its edges, constants and reference status.

        ``new`` may be any value: a constant (``flow.replace(x, 55)``) or a collection
        becomes a task as when passed to a task (``as_task``), so the replaced input
        becomes a constant input of ``old``'s downstream tasks.
        """
        from flowcore.utilities.tasks import as_task

        self._require(old)
        new = as_task(new, flow=self)
        upstream = list(self._upstream[old])
        downstream = list(self._downstream[old])
        self._remove_task(old)
        self.add_task(new)
        for edge in upstream:
            self.add_edge(
                edge.upstream_task,
                new,
                key=edge.key,
                mapped=edge.mapped,
                flattened=edge.flattened,
                validate=False,
            )
        for edge in downstream:
            self.add_edge(
                new,
                edge.downstream_task,
                key=edge.key,
                mapped=edge.mapped,
                flattened=edge.flattened,
                validate=False,
            )
        if old in self.constants:
            self.constants[new].update(self.constants.pop(old))
        if old in self._reference_tasks:
            self._reference_tasks = (self._reference_tasks - {old}) | {new}
        if validate:
            self._check_graph()

    def _remove_task(self, task: Task) -> None:
        for edge in list(self._upstream[task]) + list(self._downstream[task]):
            self.edges.discard(edge)
            self._downstream[edge.upstream_task].pop(edge, None)
            self._upstream[edge.downstream_task].pop(edge, None)
        self.tasks.discard(task)
        self._slug_set.discard(self.slugs[task])
        del self._order[task], self._upstream[task], self._downstream[task], self.slugs[task]
        self._cache.clear()

    def copy(self) -> Flow:
        """A shallow copy with its own task, edge, constant and slug containers."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.tasks = set(self.tasks)
        new.edges = set(self.edges)
        new.constants = defaultdict(dict, {t: dict(v) for t, v in self.constants.items()})
        new.slugs = dict(self.slugs)
        new._slug_set = set(self._slug_set)
        new._order = dict(self._order)
        new._upstream = {t: dict(e) for t, e in self._upstream.items()}
        new._downstream = {t: dict(e) for t, e in self._downstream.items()}
        new._slug_counts = dict(self._slug_counts)
        new._reference_tasks = set(self._reference_tasks)
        new._cache = {}
        new._scopes = []  # (not inside the original's `with` block)
        new.state_handlers = list(self.state_handlers)
        return new

    # -- queries ----------------------------------------------------------------------------

    def _require(self, task: Task) -> None:
        if task not in self._order:
            raise ValueError(f"Task {task} was not found in Flow {self!r}")

    def edges_to(self, task: Task) -> set[Edge]:
        self._require(task)
        return set(self._upstream[task])

    def edges_from(self, task: Task) -> set[Edge]:
        self._require(task)
        return set(self._downstream[task])

    def upstream_tasks(self, task: Task) -> set[Task]:
        return {e.upstream_task for e in self.edges_to(task)}

    def downstream_tasks(self, task: Task) -> set[Task]:
        return {e.downstream_task for e in self.edges_from(task)}

    def all_upstream_edges(self) -> dict[Task, set[Edge]]:
        """``{task: its upstream edges}`` for every task."""
        return self._memo(  # type: ignore[no-any-return]
            "all_upstream_edges",
            lambda: {t: frozenset(edges) for t, edges in self._upstream.items()},
        )

    def all_downstream_edges(self) -> dict[Task, set[Edge]]:
        """``{task: its downstream edges}`` for every task."""
        return self._memo(  # type: ignore[no-any-return]
            "all_downstream_edges",
            lambda: {t: frozenset(edges) for t, edges in self._downstream.items()},
        )

    def root_tasks(self) -> set[Task]:
        """Tasks with no upstream edge."""
        return self._memo(  # type: ignore[no-any-return]
            "root_tasks", lambda: frozenset(t for t in self._order if not self._upstream[t])
        )

    def terminal_tasks(self) -> set[Task]:
        """Tasks with no downstream edge."""
        return self._memo(  # type: ignore[no-any-return]
            "terminal_tasks",
            lambda: frozenset(t for t in self._order if not self._downstream[t]),
        )

    def parameters(self) -> set[Parameter]:
        """The flow's Parameters."""
        from flowcore.core.parameter import Parameter

        return self._memo(  # type: ignore[no-any-return]
            "parameters", lambda: frozenset(t for t in self._order if isinstance(t, Parameter))
        )

    def _memo(self, name: str, compute: Callable[[], Any], *args: tuple[str, Any]) -> Any:
        """A graph query's answer, kept in ``_cache`` until the graph changes.

        The key is Prefect 1's: ``(method name, ((argument, value), ...))``. Answers are
        stored frozen and handed out as fresh sets / dicts of sets, so a caller's change
        cannot corrupt the memo; anything else found under a key is returned as it is.
        """
        key = (name, args)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = compute()
        if isinstance(found, frozenset):
            return set(found)
        if isinstance(found, dict):
            return {k: set(v) if isinstance(v, frozenset) else v for k, v in found.items()}
        return found

    def get_tasks(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        task_type: type | None = None,
    ) -> list[Task]:
        """Tasks matching every criterion given (``tags``: the task has all of them)."""
        wanted_tags = set(tags or ())
        return [
            t
            for t in self._order
            if (name is None or t.name == name)
            and (slug is None or self.slugs[t] == slug)
            and wanted_tags <= t.tags
            and (task_type is None or isinstance(t, task_type))
        ]

    def reference_tasks(self) -> set[Task]:
        """The tasks whose states decide the flow state (default: the terminal tasks,
        not counting resource init/cleanup tasks; a task whose only downstreams are
        resource cleanups counts as terminal)."""
        if self._reference_tasks:
            return set(self._reference_tasks)
        return self._memo(  # type: ignore[no-any-return]
            "_default_reference_tasks", self._default_reference_tasks
        )

    def _default_reference_tasks(self) -> frozenset[Task]:
        return frozenset(
            task
            for task in self._order
            if not task._excluded_from_reference
            and all(e.downstream_task._reference_transparent for e in self._downstream[task])
        )

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        tasks = set(tasks)
        missing = [t for t in tasks if t not in self._order]
        if missing:
            raise ValueError(
                f"reference tasks must be part of the flow. {missing} are not in flow "
                f"{self.name!r}; add them first."
            )
        self._reference_tasks = tasks
        self._cache.clear()

    def sorted_tasks(self, root_tasks: Iterable[Task] | None = None) -> tuple[Task, ...]:
        """Tasks in dependency order (ties broken by insertion order).

        With ``root_tasks`` (non-empty), only those tasks and everything downstream of them.
        Raises ValueError naming a cycle if the graph has one.
        """
        roots = tuple(root_tasks or ())
        cache_key = ("_sorted_tasks", (("root_tasks", roots),))
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        tasks = self._order if not roots else self._downstream_closure(roots)
        indegree = {t: sum(1 for e in self._upstream[t] if e.upstream_task in tasks) for t in tasks}
        ready = [(self._order[t], id(t), t) for t, n in indegree.items() if n == 0]
        heapq.heapify(ready)
        ordered: list[Task] = []
        while ready:
            _, _, task = heapq.heappop(ready)
            ordered.append(task)
            for edge in self._downstream[task]:
                child = edge.downstream_task
                if child in indegree:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        heapq.heappush(ready, (self._order[child], id(child), child))
        if len(ordered) < len(indegree):
            raise ValueError(
                "Cycle found; flows must be acyclic! "
                + " -> ".join(t.name for t in self._find_cycle(set(indegree) - set(ordered)))
            )
        result = tuple(ordered)
        self._cache[cache_key] = result
        return result

    def _downstream_closure(self, roots: tuple[Task, ...]) -> dict[Task, int]:
        for root in roots:
            self._require(root)
        seen: dict[Task, int] = {}
        stack = list(roots)
        while stack:
            task = stack.pop()
            if task not in seen:
                seen[task] = self._order[task]
                stack.extend(e.downstream_task for e in self._downstream[task])
        return seen

    def _find_cycle(self, candidates: set[Task]) -> list[Task]:
        start = min(candidates, key=self._order.__getitem__)
        path: list[Task] = [start]
        index = {start: 0}
        while True:
            nxt = next(
                e.downstream_task
                for e in self._downstream[path[-1]]
                if e.downstream_task in candidates
            )
            if nxt in index:
                return path[index[nxt] :] + [nxt]
            index[nxt] = len(path)
            path.append(nxt)

    def validate(self) -> None:
        """Check the flow before it runs; raise ValueError (the first problem) if wrong.

        The graph: edges, reference tasks, slugs, acyclicity. The templates
        (``flowcore/core/_preflight.py``): every str target and Result location uses only
        keys a task run has (the run context's, the flow's parameters, the task's bound
        inputs; a ``flowcore.exceptions.TemplateKeyError`` otherwise), and a mapped task's
        varies per child (``{map_index}`` or a mapped input). ``flow.run()`` checks the
        same before any task runs (plus its own ``context=`` keys).
        """
        from flowcore.core._preflight import template_problems

        self._check_graph()
        for problem in template_problems(self, _context.current()):
            raise problem.error

    def _follow_direct_changes(self) -> None:
        """Make the graph's indexes follow ``flow.tasks`` and ``flow.edges`` where code
        changed those sets directly, as Prefect 1 code does to drop a dependency
        (``flow.edges.remove(edge)``) or add a task or an edge (``flow.tasks.add(task)``):
        the sets are the flow, as in Prefect 1. Called when the flow runs or is validated
        (it compares the sets with the indexes: one pass over the edges)."""
        indexed = {edge for edges in self._upstream.values() for edge in edges}
        if self.tasks == self._order.keys() and self.edges == indexed:
            return
        for task in [t for t in self.tasks if t not in self._order]:
            self.tasks.discard(task)
            self.add_task(task)
        linked = {t for e in self.edges for t in (e.upstream_task, e.downstream_task)}
        for task in [t for t in self._order if t not in self.tasks and t not in linked]:
            self.tasks.add(task)
            self._remove_task(task)  # (one with edges is left to the checks: they refer
            # to a task outside the flow, which validate() says, as Prefect 1's does)
        for index in (self._upstream, self._downstream):
            for edges in index.values():
                edges.clear()
        for edge in self.edges:
            if edge.upstream_task in self._order and edge.downstream_task in self._order:
                self._downstream[edge.upstream_task][edge] = None
                self._upstream[edge.downstream_task][edge] = None
        self._cache.clear()

    def _check_graph(self) -> None:
        """The structural checks, also run while the graph is built (eager validation)."""
        self._follow_direct_changes()
        if any(
            e.upstream_task not in self.tasks or e.downstream_task not in self.tasks
            for e in self.edges
        ):
            raise ValueError(
                f"Some edges refer to tasks not contained in this flow. Flow {self.name!r}: "
                "add tasks with add_task() or add_edge(), not by changing flow.tasks."
            )
        if any(t not in self.tasks for t in self._reference_tasks):
            raise ValueError(
                f"Some reference tasks are not contained in this flow. Flow {self.name!r}: "
                "set them with set_reference_tasks()."
            )
        if len(set(self.slugs.values())) != len(self.slugs):
            raise ValueError(f"Flow {self.name!r} has duplicate task slugs")
        if set(self.tasks) != set(self._order):
            raise ValueError(
                f"flow.tasks of {self.name!r} was changed directly; use add_task()/replace()"
            )
        if len(self.edges) != sum(len(edges) for edges in self._upstream.values()):
            raise ValueError(f"flow.edges of {self.name!r} was changed directly; use add_edge()")
        self.sorted_tasks()

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        parameters: dict[str, Any] | None = None,
        run_on_schedule: bool | None = None,
        runner_cls: type | None = None,
        **kwargs: Any,
    ) -> State | None:
        """Run the flow locally and return its final state.

        ``state.result`` maps every task to its State. Parameters come from
        ``parameters`` and from keyword arguments named like a Parameter. Other keyword
        arguments: ``executor``, ``task_states``, ``context``, ``task_contexts``,
        ``state``, ``flow_run_id``, ``flow_run_name``, ``task_runner_state_handlers``.
        """
        from flowcore.engine.flow_run import run_flow

        if getattr(self, "_scopes", None):
            raise RuntimeError(
                "Don't call `flow.run()` from within a `Flow` context manager. "
                f"({self!r})\n\nDo:\n\n  with Flow(...) as flow:\n      ...\n  "
                "flow.run(...)\n\nDon't:\n\n  with Flow(...) as flow:\n      ...\n"
                "      flow.run(...)"
            )
        return run_flow(
            self,
            parameters=parameters,
            run_on_schedule=run_on_schedule,
            runner_cls=runner_cls,
            **kwargs,
        )

    # -- saving and drawing (flowcore/core/_flow_io.py) -------------------------------------

    def save(self, fpath: str | None = None) -> str:
        """Cloudpickle the flow to ``fpath`` (default, as in Prefect 1:
        ``<config.home_dir>/flows/<slugified name>.prefect``, where ``Flow.load(name)``
        looks); return the path."""
        from flowcore.core._flow_io import save_flow

        return save_flow(self, fpath)

    @classmethod
    def load(cls, fpath: str) -> Flow:
        """Read a flow written by ``save``: a file path, or the name of a flow saved at
        the default location."""
        from flowcore.core._flow_io import load_flow

        return load_flow(fpath)

    def visualize(
        self,
        flow_state: State | None = None,
        filename: str | None = None,
        format: str | None = None,
        horizontal: bool = False,
    ) -> Any:
        """Draw the flow with graphviz (``pip install 'flowcore[viz]'`` and Graphviz's
        ``dot``) and return the ``graphviz.Digraph``.

        Mapped tasks are boxes labelled ``name <map>`` and mapped edges are dashed. With
        ``flow_state`` the nodes are filled with their states' colours (one node per mapped
        child). With ``filename`` the drawing is written to ``filename.<format>`` (default
        pdf); otherwise it is shown inline in a notebook, or written to
        ``<home_dir>/visualize/<flow name slug>.<format>`` (replaced by the next drawing of
        the same flow; nothing is left in temporary directories) and opened in a viewer.
        """
        from flowcore.core._flow_io import visualize_flow

        return visualize_flow(
            self, flow_state=flow_state, filename=filename, format=format, horizontal=horizontal
        )
