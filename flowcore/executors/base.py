"""The executor interface.

An executor receives plain callables and their arguments and knows nothing of the
engine. ``start()`` is a context manager around a session (a pool, a cluster); it is
re-entrant, so ``flow.run`` can hold one session across retry passes while each
``FlowRunner.run`` also enters it. ``submit(fn, *args, extra_context=None, **kwargs)``
returns a future-like value, and ``wait(x)`` resolves futures anywhere inside ``x``
(lists, dicts, tuples). ``collect(x)`` is ``wait`` for the FlowRunner: an executor whose
own machinery can fail a call (a dead Dask worker, a result that cannot leave its process)
returns an exception from ``flowcore.exceptions`` in that call's place instead of raising
(``DaskExecutor``); the others need not override it.

Hints serve maps: ``worker_count()``, how many calls can run at once (None: the
executor runs one call at a time in the caller, so batching gains nothing, see
``engine/batches.py``); ``runs_in_turn()``, whether each call is carried out whole before
the next starts, in this process (then a map's children can share one TaskRunner); and
``partial_results(future)``, what a call that was lost reported of its progress before
(``executors.progress``; nothing where calls cannot be lost half-way); and
``cancellation_event()``, the name of the event a call checks before it starts
(``DaskExecutor`` on a cluster at an ``address`` or an in-process one; None elsewhere), so
a call that runs many things in turn (a batch of mapped children) can check it between
them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Executor"]


class Executor:
    """Base class. Subclasses implement ``_session``, ``submit`` and ``wait``."""

    def __init__(self) -> None:
        self._depth = 0

    def __repr__(self) -> str:
        return f"<Executor: {type(self).__name__}>"

    @contextmanager
    def start(self) -> Iterator[None]:
        """Open a session (nested calls share the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self._session():
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    @contextmanager
    def _session(self) -> Iterator[None]:
        yield

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        extra_context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement submit()")

    def wait(self, futures: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement wait()")

    def collect(self, futures: Any) -> Any:
        """``wait``, except that a call the executor's machinery could not carry out is
        returned as an exception in its place (see the module docstring)."""
        return self.wait(futures)

    def worker_count(self) -> int | None:
        """How many calls can run at once (None: one at a time, in the caller)."""
        return None

    def runs_in_turn(self) -> bool:
        """Whether each call is carried out, whole, before the next one starts, in this
        process (False unless an executor says so)."""
        return False

    def ships_to_processes(self) -> bool:
        """Whether calls are pickled to other processes (the pre-flight check then makes
        sure the tasks pickle); False: they share this process's objects."""
        return False

    def partial_results(self, future: Any) -> tuple[list[Any], Any]:
        """``(pieces, marker)`` a lost call reported before it was lost: the pieces it
        finished and the one it was running when it was lost (None: not known; see the
        module docs)."""
        return [], None

    def cancellation_event(self) -> str | None:
        """The name of the event this session's calls check before they start (cleared
        when the session ends early); None when the session has none."""
        return None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_depth"] = 0
        return state
