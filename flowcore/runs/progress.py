"""A live display of a flow run's progress on stderr (rich), one line per task.

::

    task         done  cached  failed  total  ETA
    load            1       0       0      1
    clean <map>  6120     310      12  10000  0:00:04

``flow.run(progress=True)`` shows it; by default it is shown when stderr is a terminal,
and never otherwise (``progress=False`` turns it off). It goes to stderr only, so it never
mixes into logs written to files or pipes. When it is on a terminal, what the run prints
there while it is shown (log lines of the ``flowcore`` logger's handlers that write to the
terminal, ``print`` output, warnings) is written above it, so the display neither erases
them nor leaves copies of itself between them. rich redraws it four times a second on its
own thread; each redraw first pulls what the run's RunRecorder collected since the last
(:meth:`flowcore.runs.recorder.RunRecorder.drain`) and counts it (:meth:`RunProgress.count`),
so the display costs the flow's thread nothing per task run beyond what the recorder does
anyway.

Columns: a task run counts once, in its latest category (``done``, ``cached``,
``failed``); one that is retried, or ends ``Cancelled`` (Ctrl-C), leaves its column. The ETA
of a map comes from the rate its children finished at since the display first saw some
finish.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from flowcore.engine.state import Cached, Cancelled, Failed, Finished, Mapped

__all__ = ["RunProgress", "wants_progress"]

_COLUMNS = ("task", "done", "cached", "failed", "total", "ETA")
# a state class's column: "done", "cached", "failed", "mapped", or None (not finished)
_CATEGORIES: dict[type, str | None] = {}
_UNKNOWN = "?"  # (a class not in _CATEGORIES yet)


def _category(cls: type) -> str | None:
    """``cls``'s column (``_CATEGORIES``, filled on first use)."""
    known = _CATEGORIES.get(cls, _UNKNOWN)
    if known is not _UNKNOWN:
        return known
    category = (
        None
        if not issubclass(cls, Finished) or issubclass(cls, Cancelled)
        else "mapped"
        if issubclass(cls, Mapped)
        else "cached"
        if issubclass(cls, Cached)
        else "failed"
        if issubclass(cls, Failed)
        else "done"
    )
    _CATEGORIES[cls] = category
    return category


def wants_progress(asked: bool | None) -> bool:
    """``flow.run(progress=...)``: True/False as given; None means "when stderr is a
    terminal"."""
    if asked is not None:
        return bool(asked)
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


class _Line:
    __slots__ = ("counts", "mark", "mapped", "name", "seen", "total")

    def __init__(self, name: str, mapped: bool) -> None:
        self.name = name
        self.mapped = mapped
        self.counts = {"done": 0, "cached": 0, "failed": 0}
        # each counted task run's category, by map index (-1: the task itself); by index,
        # not by a (slug, index) tuple: a tuple kept per child is one more object for each
        # of the garbage collector's older collections to visit
        self.seen: dict[int, str] = {}
        self.total: int | None = None if mapped else 1
        # (when the display first saw some of the map finished, and how many): the ETA
        # comes from the rate since then
        self.mark: tuple[float, int] | None = None


class RunProgress:
    """The display for one run of a flow whose recorded ``structure`` is given."""

    def __init__(self, structure: dict[str, Any], stream: Any = None) -> None:
        self._lines = {
            t["slug"]: _Line(
                f"{t['name']} <map>" if t.get("mapped") else t["name"], bool(t.get("mapped"))
            )
            for t in structure.get("tasks", [])
        }
        self._stream = stream
        self._live: Any = None
        self._pull: Callable[[], object] | None = None
        self._moved: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._above: _Above | None = None
        self._stdout: Any = None  # (the sys.stdout replaced while the display is shown)
        self._printer: threading.Thread | None = None
        self._printing = threading.Event()

    def start(self, pull: Callable[[], object] | None = None) -> None:
        """Show the display; ``pull()`` is called before each redraw (it feeds
        :meth:`count`). On a terminal, what the run prints there is written above it (the
        module docstring)."""
        from rich.console import Console
        from rich.live import Live

        self._pull = pull
        console = Console(
            file=self._stream or sys.stderr, highlight=False, markup=False, emoji=False
        )
        on_terminal = console.is_terminal
        self._live = Live(
            get_renderable=self._table,
            console=console,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=on_terminal,  # (rare writes: each is printed above at once)
        )
        self._live.start()
        if not on_terminal:
            return
        # log lines and prints go above the display in batches (_print_above): printed one
        # by one, each made rich redraw the table, which slowed a run down hundreds of times
        self._above = _Above(console.file)  # (the terminal the display is on)
        self._moved = _write_above(self._above)
        if _isatty(sys.stdout):  # (a stdout sent to a file stays there)
            self._stdout, sys.stdout = sys.stdout, self._above
        self._printing.clear()
        self._printer = threading.Thread(
            target=self._print_above_until_stopped, name="flowcore-progress-lines", daemon=True
        )
        self._printer.start()

    def stop(self) -> None:
        """Print what is left above the display, draw the final counts and stop
        (``Live.stop`` draws them: a refresh before it drew the table twice, 0.8 ms a
        run), then give the streams back."""
        live, self._live = self._live, None
        if live is None:
            return
        printer, self._printer = self._printer, None
        if printer is not None:
            self._printing.set()
            printer.join()
            self._print_above(live, everything=True)
        live.stop()
        for handler, stream in self._moved:
            handler.setStream(stream)
        self._moved = []
        above, self._above = self._above, None
        if self._stdout is not None:
            if sys.stdout is above:
                sys.stdout = self._stdout
            self._stdout = None
        if above is not None:  # (written while the streams were given back)
            for line in above.take(everything=True):
                above.original.write(line + "\n")
        if not live.console.is_terminal:  # (its last row has no line end there)
            live.console.file.write("\n")
        self._pull = None

    def _print_above_until_stopped(self) -> None:
        while not self._printing.wait(_PRINT_EVERY):
            live = self._live
            if live is not None:
                self._print_above(live)

    def _print_above(self, live: Any, everything: bool = False) -> None:
        """Print the lines written to the terminal since the last call above the display,
        at once (one redraw of the table for all of them)."""
        above = self._above
        lines = above.take(everything) if above is not None else []
        if lines:
            from rich.text import Text

            live.console.print(Text.from_ansi("\n".join(lines)), soft_wrap=True)

    def count_columns(
        self, slugs: Sequence[str], indexes: Sequence[int], states: Sequence[Any]
    ) -> None:
        """:meth:`count` for reports given as three columns. A batch of one task's task
        runs that all ended in one state class, none of them counted before (a map's
        children, as a drain usually brings them), is counted in a few calls that loop in
        C; any other batch goes through :meth:`count`."""
        if not slugs:
            return
        slug = slugs[0]
        if slugs.count(slug) == len(slugs):
            classes = set(map(type, states))
            if len(classes) == 1:
                category = _category(classes.pop())
                line = self._lines.get(slug)
                if line is None:
                    return
                seen = line.seen
                if seen.keys().isdisjoint(indexes):  # (none counted before)
                    if category is None:  # (all entered Running: nothing changes)
                        return
                    if category != "mapped":
                        before = len(seen)
                        seen.update(dict.fromkeys(indexes, category))
                        line.counts[category] += len(seen) - before
                        return
        self.count(zip(slugs, indexes, states))

    def count(self, reported: Iterable[tuple[str, int, Any]]) -> None:
        """Count the finished task runs among ``reported`` (a task run's slug and map
        index, and a state, or None for one that entered Running): a child, or a task that
        is not mapped, once, in its latest category; a mapped parent gives its task's
        total."""
        lines = self._lines
        categories = _CATEGORIES
        current: str | None = None  # the slug of the line in hand (a map's reports come in runs)
        line: _Line | None = None
        seen: dict[int, str] = {}
        counts: dict[str, int] = {}
        for slug, index, state in reported:
            cls = type(state)
            category = categories.get(cls, _UNKNOWN)
            if category is _UNKNOWN:
                category = _category(cls)
            if slug is not current:
                current, line = slug, lines.get(slug)
                if line is not None:
                    seen, counts = line.seen, line.counts
            if line is None:
                continue
            before = seen.get(index)
            if category is None:  # running again (a retry), or Cancelled: not finished
                if before is not None:
                    counts[before] -= 1
                    del seen[index]
                continue
            if before == category:
                continue
            if category == "mapped":
                if index < 0:
                    line.total = state.n_map_states
                    continue
                category = "done"
            if before is not None:
                counts[before] -= 1
            seen[index] = category
            counts[category] += 1

    def _table(self) -> Any:
        pull = self._pull
        if pull is not None:
            pull()
        from rich import box
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for column in _COLUMNS:
            table.add_column(column, justify="left" if column == "task" else "right")
        for line in self._lines.values():
            total = "?" if line.total is None else str(line.total)
            table.add_row(
                line.name,
                str(line.counts["done"]),
                str(line.counts["cached"]),
                str(line.counts["failed"]),
                total,
                self._eta(line),
            )
        return table

    @staticmethod
    def _eta(line: _Line) -> str:
        """The time left for a map, at the rate its children finished since the display
        first saw some finished (counting from the map's start instead overstated the
        rate: the children finished before the first redraw came in at once)."""
        finished = sum(line.counts.values())
        if not line.mapped or line.total is None or not finished or finished >= line.total:
            return ""
        now = time.monotonic()
        if line.mark is None:
            line.mark = (now, finished)
            return ""
        since, then = line.mark
        if finished <= then or now <= since:
            return ""
        remaining = int((now - since) / (finished - then) * (line.total - finished))
        return f"{remaining // 3600}:{remaining // 60 % 60:02d}:{remaining % 60:02d}"


_PRINT_EVERY = 0.1  # seconds between the batches of lines printed above the display


class _Above:
    """A stream for what is written to the terminal while the display is shown: complete
    lines are kept until :meth:`RunProgress._print_above` prints them above it; the rest
    of a stream's interface is ``original``'s."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._partial = ""

    def write(self, text: str) -> int:
        with self._lock:
            pending = self._partial + text
            if "\n" in pending:
                *done, self._partial = pending.split("\n")
                self._lines.extend(done)
            else:
                self._partial = pending
        return len(text)

    def flush(self) -> None:
        """(Lines are printed in batches: nothing to do now.)"""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return True

    def take(self, everything: bool = False) -> list[str]:
        """The complete lines written since the last call (with ``everything``, an
        unfinished last one too)."""
        with self._lock:
            lines, self._lines = self._lines, []
            if everything and self._partial:
                lines.append(self._partial)
                self._partial = ""
        return lines

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer, ...
        return getattr(self.original, name)


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):  # a closed stream
        return False


def _write_above(proxy: Any) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Point the ``flowcore`` logger's handlers that write to a terminal at ``proxy`` (what
    is printed above the display); returns each handler moved and the stream to give it
    back."""
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger("flowcore").handlers:
        if not isinstance(handler, logging.StreamHandler) or handler.stream is proxy:
            continue
        if _isatty(handler.stream):
            moved.append((handler, handler.setStream(proxy)))
    return moved
