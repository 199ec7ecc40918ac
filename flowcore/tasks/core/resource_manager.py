"""``resource_manager``: set up a temporary resource for a block of tasks and always clean
it up afterwards.

::

    @resource_manager
    class TempDir:
        def __init__(self, prefix):          # runs as the "TempDir" (init) task
            self.prefix = prefix
        def setup(self):                     # "TempDir.setup": its result is the resource
            self.path = tempfile.mkdtemp(prefix=self.prefix)
            return self.path
        def cleanup(self, path):             # "TempDir.cleanup"
            shutil.rmtree(path)

    with Flow("example") as flow:
        with TempDir("job-") as path:        # ``path`` is the setup task
            files = download(path)
            report = summarise(files)

Calling the manager builds up to three tasks::

    init(*args) ──mgr──> setup ──resource──> [block tasks] ──> cleanup
       └───────────────────mgr──────────────────────────────────┘

While the block is open, ``Flow.add_task`` hands every new task to the active
:class:`ResourceContext` (``context.resource``). On exit, each block task with no upstream
inside the block gets ``setup`` as an upstream, and each with no downstream inside the
block gets ``cleanup`` as a downstream.

What the engine needs to know is declared by class attributes, not by type checks:
``_excluded_from_reference`` (init and cleanup never decide the flow state, and a task
whose only downstreams are cleanups still does: ``_reference_transparent``) and
``_rerun_every_pass`` (setup and cleanup run again on every retry pass, because the
resource does not survive between passes, unless their state is Cached). Cleanup's
trigger, :func:`resource_cleanup_trigger`, runs it even when block tasks failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, overload

from flowcore.core.task import Task
from flowcore.core.task_arguments import validate_run_signature
from flowcore.engine import signals
from flowcore.utilities import context as _context

if TYPE_CHECKING:
    from flowcore.core.edge import Edge
    from flowcore.core.flow import Flow
    from flowcore.engine.state import State

__all__ = [
    "ResourceCleanupTask",
    "ResourceContext",
    "ResourceInitTask",
    "ResourceManager",
    "ResourceSetupTask",
    "resource_cleanup_trigger",
    "resource_manager",
]


class ResourceInitTask(Task):
    """Builds the manager object: its ``run`` is the decorated class itself."""

    _excluded_from_reference = True

    def __init__(self, resource_class: Callable[..., Any], **kwargs: Any) -> None:
        validate_run_signature(resource_class, f"Resource manager {kwargs.get('name')!r}")
        self.run = resource_class  # type: ignore[method-assign]
        super().__init__(**kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_run_sig", None)
        return state


class ResourceSetupTask(Task):
    """Calls ``mgr.setup()``; its result is the resource the block's tasks receive."""

    _rerun_every_pass = True

    def run(self, mgr: Any) -> Any:
        return mgr.setup()


class ResourceCleanupTask(Task):
    """Calls ``mgr.cleanup(resource)`` once the block's tasks have finished."""

    _excluded_from_reference = True
    _reference_transparent = True
    _rerun_every_pass = True

    def run(self, mgr: Any, resource: Any = None) -> None:
        mgr.cleanup(resource)


def resource_cleanup_trigger(upstream_states: Mapping[Edge, State]) -> bool:
    """Run the cleanup once every upstream finished, whatever the block's tasks did.

    Raises TRIGGERFAIL while an upstream is unfinished, and SKIP when the init task
    (``mgr``) or the setup task (``resource``) skipped or did not succeed: there is then
    nothing to clean up.
    """
    if not all(state.is_finished() for state in upstream_states.values()):
        raise signals.TRIGGERFAIL(
            "Trigger was 'resource_cleanup_trigger' but some of the upstream tasks were "
            "not finished."
        )
    by_key = {edge.key: state for edge, state in upstream_states.items() if edge.key}
    for key, label in (("mgr", "init"), ("resource", "setup")):
        state = by_key.get(key)
        if state is None:
            continue
        if state.is_skipped():
            raise signals.SKIP(f"Resource manager {label} skipped")
        if not state.is_successful():
            raise signals.SKIP(f"Resource manager {label} failed")
    return True


class ResourceContext:
    """The ``with`` block of a resource manager (what calling a ``ResourceManager`` returns).

    Entering it returns the setup task (None when the class has no ``setup``).
    """

    def __init__(
        self, init_task: Task, setup_task: Task | None, cleanup_task: Task, flow: Flow
    ) -> None:
        self.init_task = init_task
        self.setup_task = setup_task
        self.cleanup_task = cleanup_task
        self._flow = flow
        self._tasks: dict[Task, None] = {}
        self._scopes: list[Any] = []

    def add_task(self, task: Task, flow: Flow) -> None:
        """Record ``task`` as part of the block (called by ``Flow.add_task``)."""
        if flow is not self._flow:
            raise ValueError("Multiple flows cannot be used with the same resource block")
        self._tasks[task] = None

    def __enter__(self) -> Task | None:
        scope = _context.context(resource=self)
        scope.__enter__()
        self._scopes.append(scope)
        return self.setup_task

    def __exit__(self, *exc: object) -> None:
        self._scopes.pop().__exit__(*exc)
        if exc[0] is not None:
            return
        flow, setup, cleanup = self._flow, self.setup_task, self.cleanup_task
        for child in self._tasks:
            upstream = flow.upstream_tasks(child)
            if (
                setup is not None
                and setup not in upstream
                and not any(t in self._tasks for t in upstream)
            ):
                child.set_upstream(setup, flow=flow)
            downstream = flow.downstream_tasks(child)
            if cleanup not in downstream and not any(t in self._tasks for t in downstream):
                child.set_downstream(cleanup, flow=flow)


class ResourceManager:
    """Builds the init / setup / cleanup tasks of a resource class (see the module docs).

    Usually made by the :func:`resource_manager` decorator.

    Args:
        resource_class: a callable (usually the class) whose result has ``cleanup(resource)``
            and optionally ``setup() -> resource``.
        name: the init task's name (default: the class name); setup and cleanup are named
            ``<name>.setup`` and ``<name>.cleanup``.
        init_task_kwargs, setup_task_kwargs, cleanup_task_kwargs: ``Task`` arguments for
            each task (setup and cleanup default to ``checkpoint=False``; cleanup to the
            ``resource_cleanup_trigger`` and ``skip_on_upstream_skip=False``).
    """

    def __init__(
        self,
        resource_class: Callable[..., Any],
        name: str | None = None,
        init_task_kwargs: dict[str, Any] | None = None,
        setup_task_kwargs: dict[str, Any] | None = None,
        cleanup_task_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.resource_class = resource_class
        self.name = name if name is not None else getattr(resource_class, "__name__", "resource")
        self.init_task_kwargs = {"name": self.name, **(init_task_kwargs or {})}
        self.setup_task_kwargs = {
            "name": f"{self.name}.setup",
            "checkpoint": False,
            **(setup_task_kwargs or {}),
        }
        self.cleanup_task_kwargs = {
            "name": f"{self.name}.cleanup",
            "trigger": resource_cleanup_trigger,
            "skip_on_upstream_skip": False,
            "checkpoint": False,
            **(cleanup_task_kwargs or {}),
        }

    def __repr__(self) -> str:
        return f"<ResourceManager: {self.name}>"

    def __call__(self, *args: Any, flow: Flow | None = None, **kwargs: Any) -> ResourceContext:
        """Add the tasks to ``flow`` (default: the active flow); ``args`` go to the class."""
        if flow is None:
            flow = _context.current().get("flow")
            if flow is None:
                raise ValueError(
                    "Could not infer an active Flow context. Use resource manager "
                    f"{self.name!r} inside a `with Flow(...)` block or pass flow=..."
                )
        init = ResourceInitTask(self.resource_class, **self.init_task_kwargs)(
            *args, flow=flow, **kwargs
        )
        setup: Task | None = None
        if hasattr(self.resource_class, "setup"):
            setup = ResourceSetupTask(**self.setup_task_kwargs)(init, flow=flow)
            cleanup = ResourceCleanupTask(**self.cleanup_task_kwargs)(init, setup, flow=flow)
        else:
            cleanup = ResourceCleanupTask(**self.cleanup_task_kwargs)(init, flow=flow)
        return ResourceContext(init, setup, cleanup, flow)


@overload
def resource_manager(
    resource_class: Callable[..., Any],
    *,
    name: str | None = None,
    init_task_kwargs: dict[str, Any] | None = None,
    setup_task_kwargs: dict[str, Any] | None = None,
    cleanup_task_kwargs: dict[str, Any] | None = None,
) -> ResourceManager: ...


@overload
def resource_manager(
    resource_class: None = None,
    *,
    name: str | None = None,
    init_task_kwargs: dict[str, Any] | None = None,
    setup_task_kwargs: dict[str, Any] | None = None,
    cleanup_task_kwargs: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], ResourceManager]: ...


def resource_manager(
    resource_class: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    init_task_kwargs: dict[str, Any] | None = None,
    setup_task_kwargs: dict[str, Any] | None = None,
    cleanup_task_kwargs: dict[str, Any] | None = None,
) -> ResourceManager | Callable[[Callable[..., Any]], ResourceManager]:
    """Decorate a class as a resource manager: ``@resource_manager`` or
    ``@resource_manager(name=..., init_task_kwargs=..., ...)`` (see :class:`ResourceManager`).

    The class's ``__init__`` arguments become the init task's inputs; ``setup()`` (optional)
    returns the resource; ``cleanup(resource)`` releases it.
    """

    def wrap(cls: Callable[..., Any]) -> ResourceManager:
        return ResourceManager(
            cls,
            name=name,
            init_task_kwargs=init_task_kwargs,
            setup_task_kwargs=setup_task_kwargs,
            cleanup_task_kwargs=cleanup_task_kwargs,
        )

    return wrap if resource_class is None else wrap(resource_class)
