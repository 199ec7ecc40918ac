"""``Task``: one unit of work in a flow, and the functional API that wires tasks together.

A Task instance is a *template*: calling it (``add(x, 1)``) inside ``with Flow(...)``
copies it, binds the copy's ``run()`` arguments to upstream tasks or constants, and adds
the copy to the flow. ``run()`` itself is plain Python: ``add.run(1, 2)`` runs no engine.

Everything the engine needs to know about a task is an attribute set here (retries,
timeout, trigger, caching, result, target, handlers); the engine never inspects a task's
class. Validation happens at construction (the checks of the constructor's arguments are
in ``task_arguments``) and at bind time, so mistakes surface while the flow is built, not
deep inside a run.
"""

from __future__ import annotations

import inspect
import typing
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flowcore.core._operators import OperatorMixin
from flowcore.core.task_arguments import (
    cache_policy_for,
    cache_validator_for,
    check_batch_size,
    check_cache_arguments,
    check_cache_version,
    check_positional_only,
    result_for_target,
    retry_on_types,
    retry_settings,
    state_handler_list,
    tag_set,
    timeout_seconds,
    validate_run_signature,
    warn_of_reserved_attributes,
)
from flowcore.utilities import context as _context
from flowcore.utilities.edges import EdgeAnnotation
from flowcore.utilities.logging import NamedLogger

if TYPE_CHECKING:
    from flowcore.caching.plan import CachePlan
    from flowcore.core.flow import Flow
    from flowcore.engine.result import Result
    from flowcore.engine.state import State

__all__ = ["Task", "no_default"]


class _NoDefault:
    def __repr__(self) -> str:
        return "no_default"

    def __reduce__(self) -> str:
        return "no_default"


no_default: Any = _NoDefault()


class _InstanceSignature:
    """``Task.__signature__``: on an instance, the run signature plus the call extras (what
    calling the task accepts); on the class, the constructor's signature."""

    def __get__(self, obj: Task | None, cls: type | None = None) -> inspect.Signature:
        if obj is None:
            init = inspect.signature(cls.__init__)  # type: ignore[misc]
            return init.replace(parameters=list(init.parameters.values())[1:])
        params = list(obj._run_signature().parameters.values())
        by_kind: dict[Any, list[inspect.Parameter]] = {}
        for param in params + _CALL_EXTRAS:
            by_kind.setdefault(param.kind, []).append(param)
        ordered = [p for kind in sorted(by_kind) for p in by_kind[kind]]
        return inspect.Signature(ordered, return_annotation="Task")


class TaskMetaclass(type):
    """Checks ``run`` signatures at class creation; warns when a Task is passed to a constructor."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        if "run" in namespace and callable(namespace["run"]):
            validate_run_signature(namespace["run"], f"Task class {name}")
        return super().__new__(mcs, name, bases, namespace)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, Task):
                name = cls.__name__
                warnings.warn(
                    f"A Task was passed as an argument to {name}, you likely want to first "
                    f"initialize {name} with any static (non-Task) arguments, then call the "
                    f"initialized task with any dynamic (Task) arguments instead ({value!r} "
                    f"was passed). For example:\n\n  my_task = {name}(...)  # static "
                    "(non-Task) args go here\n  res = my_task(...)  # dynamic (Task) args "
                    "go here",
                    stacklevel=2,
                )
                break
        task = super().__call__(*args, **kwargs)
        if cls is not Task and "run" not in task.__dict__:
            own = task.__dict__.keys() - _task_attributes() - _ENGINE_MEMOS
            if own:
                task.__dict__["_own_attributes"] = tuple(sorted(own))
        return task


_TASK_ATTRIBUTES: frozenset[str] | None = None
# what the engine keeps on a task object for itself (memos made on first use, which may
# be while the task is made), or on its behalf (``task.logger = ...``): never a task
# class's own attribute, whichever task of its class came first
_ENGINE_MEMOS = frozenset(
    ("_run_sig", "_run_defaults_memo", "_cache_plan_memo", "_attributes_memo", "_logger")
)


def _task_attributes() -> frozenset[str]:
    """The attributes ``Task.__init__`` sets on every task: those of a plain ``Task()``
    (made once, outside any flow). A task class's own attributes are the others its
    constructor set (``self.factor = factor``): its configuration, which ``TASK_SOURCE``
    counts. A task whose ``run`` is its own attribute (``@task``) has none: its function
    is all of it."""
    global _TASK_ATTRIBUTES
    if _TASK_ATTRIBUTES is None:
        with _context.context(_unused_task_tracker=None):
            _TASK_ATTRIBUTES = frozenset(vars(Task()))
    return _TASK_ATTRIBUTES


_CALL_EXTRAS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, default, annotation in (
        ("mapped", False, bool),
        ("task_args", None, dict),
        ("upstream_tasks", None, typing.Iterable[Any]),
        ("flow", None, "Flow"),
    )
]


def _infer_nout(run: Callable[..., Any]) -> int | None:
    """The number of outputs from a fixed-length tuple return annotation (memoised per
    function, since tasks are copied and constants created often)."""
    function = getattr(run, "__func__", run)
    try:
        return _NOUT_CACHE[function]
    except (KeyError, TypeError):
        pass
    nout = _nout_from_annotation(run)
    try:
        _NOUT_CACHE[function] = nout
    except TypeError:
        pass
    return nout


_NOUT_CACHE: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()


def _nout_from_annotation(run: Callable[..., Any]) -> int | None:
    try:
        annotation = typing.get_type_hints(run).get("return")
    except Exception:
        annotation = inspect.signature(run).return_annotation
    if annotation is None or annotation is inspect.Signature.empty:
        return None
    if typing.get_origin(annotation) is not tuple or annotation in (tuple, typing.Tuple):  # noqa: UP006
        return None
    args = typing.get_args(annotation)
    if not args:
        return 0 if "[()]" in repr(annotation) else None
    if args == ((),):
        return 0
    if Ellipsis in args:
        return None
    return len(args)


class Task(OperatorMixin, metaclass=TaskMetaclass):
    """A unit of work. Subclass it and implement ``run()``, or use ``@task``.

    Args:
        name: display name (default: the class name).
        slug: a stable id, unique within a flow (default: generated by the flow).
        tags: an iterable of strings (merged with any active ``flowcore.tags``).
        max_retries: attempts after the first (default ``tasks.defaults.max_retries``).
        retry_delay: a ``timedelta`` between attempts; required when retrying.
        retry_on: an exception type or types; retry only when the error is one of them.
        timeout: seconds (int) or a ``timedelta``; the run becomes ``TimedOut`` past it.
        trigger: decides from upstream states whether to run (default ``all_successful``).
        skip_on_upstream_skip: skip when any upstream skipped (default True).
        cache_for: a ``timedelta``; cache successful outputs for that long.
        cache_validator: decides whether a cached state is still valid.
        cache_key: the key under which outputs are cached (default: the task name).
        checkpoint: False opts out of checkpointing.
        state_handlers: a list of ``fn(task, old_state, new_state) -> State | None``.
        on_failure: ``fn(task, state)`` called when the task enters a failed state.
        log_stdout: send ``print`` output inside ``run()`` to the task logger.
        result: the ``Result`` used for checkpoints and targets.
        target: a location template or callable; an existing target skips the run.
        task_run_name: a template or callable naming each run.
        nout: the number of outputs, so the task can be tuple-unpacked.
        cache_policy: a ``flowcore.cache_policies`` policy computing the cache key.
        cache_key_fn: ``fn(context, inputs) -> str | None``; a key function policy.
        cache_expiration: a ``timedelta``; how long a value cached by a policy is valid.
        refresh_cache: True always runs and overwrites the cache; False exempts the task
            from ``tasks.refresh_cache``; None follows the config.
        cache_version: a part of ``TASK_SOURCE``'s key to change by hand (for a change the
            code digest cannot see: data files, dynamic dispatch).
        hash_file_contents: for caching, path inputs count by the sha256 of their bytes
            (default: by resolved path, size and modification time).
    """

    map_batch_size: int | None = None  # children per executor call of a map (batches.py)
    _is_constant = False
    _is_root_only = False
    _rerun_every_pass = False
    _excluded_from_reference = False
    _reference_transparent = False
    _skip_case_attach = False

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int | None = None,
        retry_delay: timedelta | None = None,
        retry_on: type[Exception] | Iterable[type[Exception]] | None = None,
        timeout: int | timedelta | None = None,
        trigger: Callable[..., bool] | None = None,
        skip_on_upstream_skip: bool = True,
        cache_for: timedelta | None = None,
        cache_validator: Callable[..., bool] | None = None,
        cache_key: str | None = None,
        checkpoint: bool | None = None,
        state_handlers: Sequence[Callable[..., State | None]] | None = None,
        on_failure: Callable[[Task, State], None] | None = None,
        log_stdout: bool = False,
        result: Result | None = None,
        target: str | Callable[..., str] | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        nout: int | None = None,
        cache_policy: Any = None,
        cache_key_fn: Callable[..., str | None] | None = None,
        cache_expiration: timedelta | None = None,
        refresh_cache: bool | None = None,
        cache_version: str | None = None,
        hash_file_contents: bool = False,
    ) -> None:
        warn_of_reserved_attributes(self)
        if name is not None and not isinstance(name, str):  # (Prefect 1 raised TypeError too)
            raise TypeError(
                f"A task's name is a str; {type(self).__name__}() got {type(name).__name__} "
                f"{name!r}. E.g. name='load'."
            )
        self.name = name or type(self).__name__
        self.slug = slug
        check_positional_only(self)
        self.tags = tag_set(self.name, tags) | set(_context.current().get("tags") or ())
        max_retries, retry_delay = retry_settings(self.name, max_retries, retry_delay, retry_on)
        self.retry_on = retry_on_types(self.name, retry_on)
        self.max_retries: int = max_retries
        self.retry_delay = retry_delay
        self.timeout = timeout_seconds(self.name, timeout)
        if trigger is None:
            from flowcore import triggers

            trigger = triggers.all_successful
        self.trigger = trigger
        self.skip_on_upstream_skip = skip_on_upstream_skip

        check_cache_arguments(
            self.name, cache_for, cache_validator, cache_key, cache_expiration, refresh_cache
        )
        self.cache_for = cache_for
        self.cache_validator = cache_validator_for(self.name, cache_for, cache_validator)
        self.cache_key = cache_key
        self.checkpoint = checkpoint
        self.state_handlers = state_handler_list(self.name, state_handlers, on_failure)
        self.log_stdout = log_stdout
        self.target = target
        self.result = result_for_target(result, target, self.name)
        self.task_run_name = task_run_name
        self.auto_generated = False
        if nout is None and type(self).run is not Task.run:
            nout = _infer_nout(self.run)
        self.nout = nout
        self.cache_policy = cache_policy_for(
            self.name, cache_policy, cache_key_fn, cache_expiration, cache_for
        )
        self.cache_expiration = cache_expiration
        self.refresh_cache = refresh_cache
        check_cache_version(self.name, cache_version)
        self.cache_version = cache_version
        self.hash_file_contents = hash_file_contents

        tracker = _context.current().get("_unused_task_tracker")
        if tracker is not None:
            tracker.add(self)

    @property
    def cache_plan(self) -> CachePlan | None:
        """How this task caches (``flowcore.caching.CachePlan``), compiled from its caching
        arguments; recompiled only when one of them is reassigned."""
        if self.cache_for is None and self.cache_policy is None and self.target is None:
            return None  # the common case, on every task run
        arguments = (
            self.name,
            self.cache_for,
            self.cache_validator,
            self.cache_key,
            self.cache_policy,
            self.cache_expiration,
            self.refresh_cache,
            self.target,
            self.hash_file_contents,
        )
        memo = self.__dict__.get("_cache_plan_memo")
        if memo is None or memo[0] != arguments:
            from flowcore.caching.plan import CachePlan

            memo = self.__dict__["_cache_plan_memo"] = (arguments, CachePlan.compile(*arguments))
        return memo[1]

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    __hash__ = object.__hash__

    def __getstate__(self) -> dict[str, Any]:
        """The task's attributes, with the digest of its code when ``TASK_SOURCE`` needs it:
        a process that receives the task's code by value (cloudpickle, for a flow file's
        code) cannot read its source, so the digest made here, where it can, goes along
        (:func:`flowcore.cache_policies.carried_code`). The digest of its attributes kept
        for ``TASK_SOURCE`` stays behind: the receiver makes its own, from what it got."""
        state = dict(self.__dict__)
        state.pop("_attributes_memo", None)
        if self.__dict__.get("cache_policy") is not None and "_carried_code" not in state:
            from flowcore.cache_policies import carried_code

            carried = carried_code(self)
            if carried is not None:
                state["_carried_code"] = carried
        return state

    logger = NamedLogger()

    def run(self) -> Any:
        """The work. Subclasses override it; arguments are bound by keyword."""

    # -- introspection ---------------------------------------------------------------------

    def _run_signature(self) -> inspect.Signature:
        sig = self.__dict__.get("_run_sig")
        if sig is None:
            sig = inspect.signature(self.run)
            self.__dict__["_run_sig"] = sig
        return sig

    def _run_defaults(self) -> dict[str, Any]:
        """The default values of ``run``'s named arguments, by name (made once per task):
        what a cache policy's ``INPUTS`` counts for an argument the run was not given."""
        defaults: dict[str, Any] | None = self.__dict__.get("_run_defaults_memo")
        if defaults is None:
            defaults = {
                name: param.default
                for name, param in self._run_signature().parameters.items()
                if param.default is not inspect.Parameter.empty
            }
            self.__dict__["_run_defaults_memo"] = defaults
        return defaults

    __signature__ = _InstanceSignature()

    def _takes_argument(self, name: str) -> bool:
        """Whether ``run`` takes an argument ``name`` (by name or through ``**kwargs``)."""
        params = self._run_signature().parameters
        return name in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )

    def inputs(self) -> dict[str, dict[str, Any]]:
        """``{argument: {"type", "default", "required"}}`` from the run signature."""
        described = {}
        for name, param in self._run_signature().parameters.items():
            if param.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                continue
            empty = param.default is inspect.Parameter.empty
            described[name] = {
                "type": Any if param.annotation is inspect.Parameter.empty else param.annotation,
                "default": None if empty else param.default,
                "required": empty,
            }
        return described

    def outputs(self) -> Any:
        """The return annotation of ``run()`` (``Any`` when absent)."""
        annotation = self._run_signature().return_annotation
        return Any if annotation is inspect.Signature.empty else annotation

    # -- the functional API ----------------------------------------------------------------

    def copy(self, **task_args: Any) -> Task:
        """A shallow copy with ``task_args`` applied (each must be an existing attribute)."""
        scope = _context.current()
        flow = scope.get("flow")
        if (
            flow is not None
            and self in flow.tasks
            and (flow.edges_to(self) or flow.edges_from(self))
        ):
            warnings.warn(
                "You are making a copy of a task that has dependencies on or to other tasks "
                "in the active flow context. The copy will not retain those dependencies. "
                f"(Copied: {self!r}.)",
                stacklevel=2,
            )
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        if new.slug and "slug" not in task_args:
            task_args["slug"] = new.slug + "-copy"
        for attr, value in task_args.items():
            if not hasattr(new, attr):
                raise AttributeError(f"{self} does not have {attr} as an attribute")
            setattr(new, attr, value)
        if "target" in task_args or "result" in task_args:
            new.result = result_for_target(new.result, new.target, new.name)
        new.tags = set(self.tags) | set(new.tags) | set(scope.get("tags") or ())
        tracker = scope.get("_unused_task_tracker")
        if tracker is not None:
            tracker.discard(self)
            tracker.add(new)
        return new

    def __call__(
        self,
        *args: Any,
        mapped: bool = False,
        task_args: dict[str, Any] | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Copy this task and bind the copy's inputs in the active (or given) flow."""
        new = self.copy(**(task_args or {}))
        return new.bind(*args, mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind this task's inputs in place (no copy)."""
        signature = self._run_signature()
        try:
            callargs = dict(signature.bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise TypeError(f"Task {self.name!r}: {exc}") from None
        for name, param in signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD and name in callargs:
                callargs.update(callargs.pop(name))
        scope = _context.current()
        self.tags.update(scope.get("tags") or ())
        flow = flow if flow is not None else scope.get("flow")
        if flow is None:
            raise ValueError(
                f"Could not infer an active Flow context while creating edge to {self}. "
                "This often means you called a task outside a `with Flow(...)` block. "
                "If you're trying to run this task outside of a Flow context, you need to "
                f"call `{self._run_hint()}.run(...)`"
            )
        self.set_dependencies(
            flow=flow, upstream_tasks=upstream_tasks, keyword_tasks=callargs, mapped=mapped
        )
        return self

    def _run_hint(self) -> str:
        """How the user refers to this task's ``run`` in an error message."""
        return f"{type(self).__name__}(...)"

    def map(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        task_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Task:
        """Copy this task and map the copy over its arguments (``unmapped(...)`` opts out).

        ``batch_size=N`` (flowcore) runs N children per executor call on the Dask
        executors (1: one call per child; default: automatic, see docs/executors.md),
        unless the task's own ``run`` takes an argument of that name (or ``**kwargs``):
        then it is that argument, as in Prefect 1, and ``task_args={"map_batch_size": N}``
        sets the batch size.
        """
        if "batch_size" in kwargs and not self._takes_argument("batch_size"):
            task_args = {**(task_args or {}), "map_batch_size": kwargs.pop("batch_size")}
        for arg in args:
            if not hasattr(arg, "__getitem__") and not isinstance(arg, EdgeAnnotation):
                raise TypeError(
                    f"Cannot map over unsubscriptable object of type {type(arg)}: "
                    f"{repr(arg)[:10]}... Task {self.name!r} maps over lists and tasks; wrap "
                    "other arguments in unmapped(...)."
                )
        task_args = dict(task_args or {})
        task_args.setdefault("nout", None)
        check_batch_size(task_args.get("map_batch_size"), f"{self.name}.map(batch_size=...)")
        new = self.copy(**task_args)
        return new.bind(*args, mapped=True, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def set_dependencies(
        self,
        flow: Flow | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> Task:
        """Add this task to ``flow`` (default: the active flow) with the given upstream,
        downstream and keyword dependencies; return this task (so calls chain)."""
        flow = flow if flow is not None else _context.current().get("flow")
        if flow is None:
            raise ValueError(
                "No Flow was passed, and could not infer an active Flow context. Pass "
                f"flow=... or use a `with Flow(...)` block to set dependencies of {self!r}."
            )
        flow.set_dependencies(
            task=self,
            upstream_tasks=upstream_tasks,
            downstream_tasks=downstream_tasks,
            keyword_tasks=keyword_tasks,
            mapped=mapped,
            validate=validate,
        )
        return self

    def set_upstream(
        self, task: Any, flow: Flow | None = None, key: str | None = None, mapped: bool = False
    ) -> Task:
        """Make ``task`` an upstream of this task (a data edge when ``key`` is given)."""
        if key is None:
            self.set_dependencies(flow=flow, upstream_tasks=[task], mapped=mapped)
        else:
            self.set_dependencies(flow=flow, keyword_tasks={key: task}, mapped=mapped)
        return self

    def set_downstream(
        self, task: Task, flow: Flow | None = None, key: str | None = None, mapped: bool = False
    ) -> Task:
        """Make ``task`` a downstream of this task (a data edge when ``key`` is given)."""
        if key is None:
            task.set_dependencies(flow=flow, upstream_tasks=[self], mapped=mapped)
        else:
            task.set_dependencies(flow=flow, keyword_tasks={key: self}, mapped=mapped)
        return self

    def pipe(self, _task: Any, /, **kwargs: Any) -> Task:
        """``t.pipe(other, **kw)`` is ``other(t, **kw)``; with an annotation class, wraps t."""
        if "self" in kwargs:
            raise ValueError('You cannot use the keyword argument "self" in .pipe.')
        if isinstance(_task, type) and issubclass(_task, EdgeAnnotation):
            from flowcore.utilities.tasks import as_task

            return as_task(_task(self))
        return _task(self, **kwargs)  # type: ignore[no-any-return]

    def __getitem__(self, key: Any) -> Task:
        from flowcore.tasks.core.operators import GetItem

        label = key.name if isinstance(key, Task) else repr(key)
        return GetItem(
            checkpoint=self.checkpoint, result=self.result, name=f"{self.name}[{label}]"
        ).bind(self, key)

    def __iter__(self) -> Iterator[Task]:
        if self.nout is None:
            raise TypeError(
                "Task is not iterable. If your task returns multiple results, pass `nout` "
                "to the task decorator/constructor, or provide a `Tuple` return-type "
                f"annotation to your task. ({self!r}; a mapped task is never iterable.)"
            )
        return (self[i] for i in range(self.nout))

    def __or__(self, other: Any) -> Any:
        """``self | other``: a state dependency; ``other`` (a constant too) runs after."""
        self.set_dependencies(downstream_tasks=[other])
        return other

    def __ror__(self, other: Any) -> Task:
        """``other | self``: a state dependency; ``other`` (a constant too) runs first."""
        self.set_dependencies(upstream_tasks=[other])
        return self
