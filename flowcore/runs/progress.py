"""A live display of a flow run's progress on stderr (rich), one line per task.

::

    task         done  cached  failed  total  ETA
    load            1       0       0      1
    clean <map>  6120     310      12  10000  0:00:04

``flow.run(progress=True)`` shows it; by default it is shown when stderr is a terminal,
and never otherwise (``progress=False`` turns it off). It goes to stderr only, so it never
mixes into logs written to stdout or to files. The RunRecorder feeds it the state changes
it hears of (:meth:`RunProgress.update`, a few dictionary operations); rich redraws it
four times a second on its own thread.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from flowcore.engine.state import Cached, Failed, Finished, Mapped, State

__all__ = ["RunProgress", "wants_progress"]

_COLUMNS = ("task", "done", "cached", "failed", "total", "ETA")


def wants_progress(asked: bool | None) -> bool:
    """``flow.run(progress=...)``: True/False as given; None means "when stderr is a
    terminal"."""
    if asked is not None:
        return bool(asked)
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


class _Line:
    __slots__ = ("cached", "done", "failed", "mapped", "name", "started", "total")

    def __init__(self, name: str, mapped: bool) -> None:
        self.name = name
        self.mapped = mapped
        self.done = self.cached = self.failed = 0
        self.total: int | None = None if mapped else 1
        self.started: float | None = None


class RunProgress:
    """The display for one run of a flow whose recorded ``structure`` is given."""

    def __init__(self, structure: dict[str, Any], stream: Any = None) -> None:
        self._lines = {
            t["slug"]: _Line(
                f"{t['name']} <map>" if t.get("mapped") else t["name"], bool(t.get("mapped"))
            )
            for t in structure.get("tasks", [])
        }
        self._seen: dict[tuple[str, int], str] = {}
        self._stream = stream
        self._live: Any = None

    def start(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(
            file=self._stream or sys.stderr, highlight=False, markup=False, emoji=False
        )
        self._live = Live(
            get_renderable=self._table,
            console=console,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def update(self, slug: str, map_index: int, state: State) -> None:
        """Count a finished task run (a child, or a task that is not mapped) once, in its
        latest category; a mapped parent gives its task's total."""
        if not isinstance(state, Finished):
            return
        line = self._lines.get(slug)
        if line is None:
            return
        if map_index < 0 and type(state) is Mapped:
            line.total = state.n_map_states
            if line.started is None:
                line.started = time.monotonic()
            return
        category = (
            "cached"
            if isinstance(state, Cached)
            else "failed"
            if isinstance(state, Failed)
            else "done"
        )
        key = (slug, map_index)
        before = self._seen.get(key)
        if before == category:
            return
        if before is not None:
            setattr(line, before, getattr(line, before) - 1)
        self._seen[key] = category
        setattr(line, category, getattr(line, category) + 1)

    def _table(self) -> Any:
        from rich import box
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for column in _COLUMNS:
            table.add_column(column, justify="left" if column == "task" else "right")
        for line in self._lines.values():
            total = "?" if line.total is None else str(line.total)
            table.add_row(
                line.name,
                str(line.done),
                str(line.cached),
                str(line.failed),
                total,
                self._eta(line),
            )
        return table

    @staticmethod
    def _eta(line: _Line) -> str:
        finished = line.done + line.cached + line.failed
        if (
            not line.mapped
            or line.total is None
            or line.started is None
            or not finished
            or finished >= line.total
        ):
            return ""
        elapsed = time.monotonic() - line.started
        remaining = int(elapsed / finished * (line.total - finished))
        return f"{remaining // 3600}:{remaining // 60 % 60:02d}:{remaining % 60:02d}"
