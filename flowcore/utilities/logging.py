"""Loggers ``flowcore``, ``flowcore.FlowRunner``, ``flowcore.TaskRunner``, ``flowcore.<task>``.

One stream handler (on stdout, as in Prefect 1) on the ``flowcore`` logger, configured
from ``config.logging`` (level, format, datefmt). Context attributes (``flow_name``, ``flow_run_id``,
``task_name``, ``task_slug``, ``task_run_id`` and ``config.logging.log_attributes``) are
added to records by a filter on that handler, so only records that are emitted pay for
them. Mapped children log through a child logger named ``flowcore.<name>[i]`` that is not
registered with :mod:`logging`, so a map of 100,000 items does not leave 100,000 loggers
behind.

The engine logs two lines per task run, as Prefect 1 does, so their cost matters: when
flowcore's handler is the only one that would see such a line, :func:`log` formats it
itself (the timestamp rendered once per second) and writes it to the handler's stream
under the handler's lock, with no ``LogRecord`` at all. Otherwise (a user's handler, a
filter, another format) the line is an ordinary record, made by ``Logger.makeRecord`` and
handled as any other, so every handler sees the usual attributes.

A failing task run logs its traceback at ERROR, as Prefect 1 does. Python 3.11's
``traceback`` module parses each frame's source segment to place its ``^^^`` markers, which
made the traceback a third of a retry's cost; flowcore's formatter renders the same text
through the documented :meth:`traceback.StackSummary.format_frame_summary` hook with each
frame's lines remembered (:class:`_FrameMemo`), keyed by everything the lines are made of
(file, positions, function name, source text), so a frame met again is not parsed again.
A plain exception (nothing chained, as a retried task's usually is) met again at the same
instructions with the same message and source lines is written as the same text, which is
remembered whole (:func:`_traceback_key`).
"""

from __future__ import annotations

import contextvars
import io
import linecache
import logging
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flowcore import configuration
from flowcore.utilities import context as _context

__all__ = [
    "LinesToLog",
    "NamedLogger",
    "RedirectToLog",
    "add_line_sink",
    "configure_extra_loggers",
    "configure_logging",
    "get_child_logger",
    "get_logger",
    "log",
    "remove_line_sink",
    "stdout_to_log",
]

_DEFAULT_FORMAT = configuration.DEFAULTS["logging"]["format"]
_CONTEXT_ATTRIBUTES = ("flow_name", "flow_run_id", "task_name", "task_slug", "task_run_id")
_LOGGERS: dict[str | None, logging.Logger] = {}


def _add_context(attributes: dict[str, Any]) -> None:
    scope = _context._scope.get() or {}
    for name in _CONTEXT_ATTRIBUTES:
        attributes.setdefault(name, scope.get(name))
    config = scope.get("config") or configuration.config
    for name in config["logging"].get("log_attributes") or ():
        attributes.setdefault(name, scope.get(name))
    attributes["_flowcore_context"] = True


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if "_flowcore_context" not in record.__dict__:
            _add_context(record.__dict__)
        return True


class _Formatter(logging.Formatter):
    """A ``logging.Formatter`` that renders ``asctime`` once per second (the datefmt has
    no sub-second field) and takes a short path for records without exceptions."""

    def __init__(self, fmt: str, datefmt: str | None) -> None:
        super().__init__(fmt, datefmt)  # ("%" style)
        self._second = -1
        self._asctime = ""
        self._line_format = fmt
        self._fast = datefmt is not None and "%f" not in datefmt
        self._plain = self._fast and fmt == _DEFAULT_FORMAT

    def plain_line(self, name: str, level: int, message: str) -> str:
        """The default format's line for a plain message, without building a record."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._asctime = time.strftime(self.datefmt or "", self.converter(now))
            self._second = second
        return f"[{self._asctime}] {logging.getLevelName(level)} - {name} | {message}\n"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if not self._fast or datefmt != self.datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._asctime = super().formatTime(record, datefmt)
            self._second = second
        return self._asctime

    def formatException(self, ei: Any) -> str:  # noqa: N802
        """What ``logging.Formatter.formatException`` writes (``traceback.print_exception``
        of the exception): the text remembered whole for a plain exception met again
        (:func:`_traceback_key`), else one whose frames' lines come from
        :class:`_FrameMemo`."""
        if sys.version_info >= (3, 11):
            value = ei[1]
            if value is not None:
                key = _traceback_key(value, ei[2])
                text = _TRACEBACKS.get(key) if key is not None else None
                if text is None:
                    exception = traceback.TracebackException(
                        type(value), value, ei[2], compact=True
                    )
                    _remember_frames(exception)
                    text = "".join(exception.format())
                    text = text[:-1] if text.endswith("\n") else text
                    if key is not None:
                        _TRACEBACKS.put(key, text)
                return text
        return super().formatException(ei)

    def format(self, record: logging.LogRecord) -> str:
        if not self._fast or record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        return self._line_format % record.__dict__


class _Memo:
    """A dict of at most ``limit`` entries, the oldest forgotten first; reads take no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        return self._entries.get(key)

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            if len(self._entries) >= self.limit:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = value


if sys.version_info >= (3, 11):  # (StackSummary.format_frame_summary is new in 3.11)

    class _FrameMemo(traceback.StackSummary):
        """A stack whose frames' lines are formatted once per distinct frame (see the module
        docstring); the 512 most recent are kept."""

        _lines = _Memo(512)

        def format_frame_summary(self, frame_summary: traceback.FrameSummary, **kwargs: Any) -> str:
            first, last = frame_summary.lineno, frame_summary.end_lineno
            if frame_summary.locals or first is None or (last is not None and last - first > 20):
                return super().format_frame_summary(frame_summary, **kwargs)
            filename = frame_summary.filename
            key = (
                filename,
                first,
                last,
                frame_summary.colno,
                frame_summary.end_colno,
                frame_summary.name,
                # the source as the lines will show it, indentation included
                linecache.getline(filename, first)
                if last is None or last == first
                else tuple(linecache.getline(filename, n) for n in range(first, last + 1)),
                tuple(kwargs.items()),
            )
            lines: str | None = self._lines.get(key)
            if lines is None:
                lines = super().format_frame_summary(frame_summary, **kwargs)
                self._lines.put(key, lines)
            return lines

    def _remember_frames(exception: traceback.TracebackException) -> None:
        """Give ``exception`` and every exception it chains or groups a :class:`_FrameMemo`."""
        seen: set[int] = set()
        pending = [exception]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            stack = _FrameMemo()
            stack.extend(current.stack)
            current.stack = stack
            pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
            pending.extend(getattr(current, "exceptions", None) or ())


# Whole traceback texts of plain exceptions, by :func:`_traceback_key`.
_TRACEBACKS = _Memo(256)


def _traceback_key(value: BaseException, tb: Any) -> tuple[Any, ...] | None:
    """What a plain exception's traceback text is made of, or None when it is not plain.

    Plain: nothing chained or grouped, no notes, not a ``SyntaxError`` (whose text shows
    the offending source), no ``sys.tracebacklimit``, a short message, and a Python that
    shows one source line per frame (3.11, 3.12). The text is then fixed by the
    exception's type and message and, for each frame, its code object, its instruction
    (which give the file, line, function and the positions of the ``^^^`` markers) and its
    source line as :mod:`linecache` has it now, after the same ``lazycache`` and
    ``checkcache`` calls the ``traceback`` module makes, so an edited file is read anew."""
    if (
        not (3, 11) <= sys.version_info < (3, 13)
        or value.__cause__ is not None
        or (value.__context__ is not None and not value.__suppress_context__)
        or getattr(value, "__notes__", None)
        or isinstance(value, SyntaxError)
        or isinstance(getattr(value, "exceptions", None), tuple)  # (an exception group)
        or hasattr(sys, "tracebacklimit")
    ):
        return None
    try:
        message = str(value)
    except Exception:
        return None
    if len(message) > 2000:
        return None
    parts: list[Any] = [type(value), message]
    files: set[str] = set()
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        filename = code.co_filename
        if filename not in files:
            files.add(filename)
            linecache.lazycache(filename, frame.f_globals)
            linecache.checkcache(filename)
        parts += (code, tb.tb_lasti, linecache.getline(filename, tb.tb_lineno))
        tb = tb.tb_next
        if len(parts) > 2 + 3 * 64:  # a deep stack (recursion) takes the general path
            return None
    return tuple(parts)


# Callables ``sink(logger_name, level, message, created)`` that see every line flowcore's
# handler writes (the run store copies a run's lines this way). A tuple, replaced whole, so
# the writers read it without a lock.
_SINKS: tuple[Any, ...] = ()
_SINKS_LOCK = threading.Lock()


def add_line_sink(sink: Any) -> None:
    """Also hand every line flowcore's own handler writes to ``sink(logger_name, level,
    message, created)`` (``message`` with its traceback, if any), until
    :func:`remove_line_sink`. A sink must be quick and must not log."""
    global _SINKS
    with _SINKS_LOCK:
        _SINKS = (*_SINKS, sink)


def remove_line_sink(sink: Any) -> None:
    global _SINKS
    with _SINKS_LOCK:
        found = list(_SINKS)
        if sink in found:
            found.remove(sink)
        _SINKS = tuple(found)


def _to_sinks(name: str, level: int, message: str, created: float) -> None:
    for sink in _SINKS:
        try:
            sink(name, level, message, created)
        except Exception as exc:  # a failing sink must not fail a task run, nor recurse
            sys.stderr.write(f"flowcore: a log line sink failed: {exc!r}\n")


class _StreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` whose ``emit`` flushes under the lock ``handle`` already holds,
    and hands each line to the sinks (:func:`add_line_sink`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self.stream
            stream.write(self.format(record) + self.terminator)
            stream.flush()
        except RecursionError:
            raise
        except BrokenPipeError:
            self.reader_gone()
        except Exception:
            self.handleError(record)
        if _SINKS and "_flowcore_no_sinks" not in record.__dict__:
            message = record.getMessage()
            if record.exc_text:
                message = f"{message}\n{record.exc_text}"
            _to_sinks(record.name, record.levelno, message, record.created)

    def reader_gone(self) -> None:
        """The stream's reader went away (``flowcore run flow.py | head -1``): say so once
        on stderr and write no more lines (each would fail the same way, and logging
        would print a traceback for each); the run goes on, and its lines still reach the
        sinks (the run store). Called under the handler's lock. A standard stream is
        pointed at ``os.devnull`` (as Python's documentation advises for a broken pipe),
        so the interpreter's last flush of it does not fail again at exit."""
        stream = self.stream
        self.stream = open(os.devnull, "w")  # noqa: SIM115 - the handler's stream from now on
        name = "stdout" if stream is sys.stdout else "stderr" if stream is sys.stderr else None
        if name is not None:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass
        try:
            sys.stderr.write(
                f"flowcore: log lines are no longer written to {name or 'its stream'}: its "
                "reader closed it (broken pipe); the run goes on\n"
            )
        except (OSError, ValueError):
            pass


def configure_logging(testing: bool = False) -> logging.Logger:
    """(Re)configure the ``flowcore`` logger from ``flowcore.config.logging``."""
    settings = configuration.config.logging
    level = _level(settings.level)  # (a bad level changes nothing)
    logger = logging.getLogger("flowcore")
    for handler in [h for h in logger.handlers if getattr(h, "_flowcore", False)]:
        for name in ("flowcore", *_EXTRA_LOGGERS):
            logging.getLogger(name).removeHandler(handler)
    handler = _StreamHandler(sys.stdout)
    handler._flowcore = True  # type: ignore[attr-defined]
    handler.setFormatter(_Formatter(settings.format, settings.datefmt))
    handler.addFilter(_ContextFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    configure_extra_loggers()
    return logger


def configure_extra_loggers() -> None:
    """Give each logger named in ``config.logging.extra_loggers`` flowcore's handler and
    the configured level (as Prefect 1's function of this name does; call it after
    changing that list in code)."""
    settings = configuration.config.logging
    handlers = [h for h in logging.getLogger("flowcore").handlers if getattr(h, "_flowcore", False)]
    level = _level(settings.level)
    for name in settings.get("extra_loggers") or []:
        extra = logging.getLogger(name)
        for handler in handlers:
            if handler not in extra.handlers:
                extra.addHandler(handler)
        extra.setLevel(level)
        _EXTRA_LOGGERS.add(name)


_EXTRA_LOGGERS: set[str] = set()  # the loggers flowcore's handler was given to


def _level(value: Any) -> int:
    """``config.logging.level`` as a level number: a name (any case: ``"debug"``) or a
    number (``10``, or ``"10"`` from the environment)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    number = logging.getLevelName(text)
    if isinstance(number, int):
        return number
    raise ValueError(
        f"config logging.level is {value!r}, which is not a logging level; set it (in "
        "~/.flowcore/config.toml, or FLOWCORE__LOGGING__LEVEL) to DEBUG, INFO, WARNING, "
        "ERROR or CRITICAL, or to a number"
    )


_LOGGER_FILTER = _ContextFilter()


def get_logger(name: str | None = None) -> logging.Logger:
    """``flowcore`` or ``flowcore.<name>``; records logged on it carry the run's context
    attributes, whichever handler receives them."""
    logger = _LOGGERS.get(name)
    if logger is None:
        logger = logging.getLogger("flowcore" if name is None else f"flowcore.{name}")
        if _LOGGER_FILTER not in logger.filters:
            logger.addFilter(_LOGGER_FILTER)
        _LOGGERS[name] = logger
    return logger


class NamedLogger:
    """A ``logger`` attribute of an object with a ``name`` (a Flow, a Task):
    ``flowcore.<name>``, or the logger assigned to it (``flow.logger = ...``, as Prefect
    1's plain attribute allowed), kept in the object's ``_logger``."""

    def __get__(self, owner: Any, kind: type | None = None) -> Any:
        if owner is None:
            return self
        assigned: logging.Logger | None = owner.__dict__.get("_logger")
        return get_logger(owner.name) if assigned is None else assigned

    def __set__(self, owner: Any, logger: logging.Logger) -> None:
        owner.__dict__["_logger"] = logger


def get_child_logger(parent: logging.Logger, full_name: str) -> logging.Logger:
    """An unregistered logger named ``flowcore.<full_name>`` whose records go to ``parent``."""
    logger = logging.Logger(f"flowcore.{full_name}")
    logger.parent = parent
    logger.addFilter(_LOGGER_FILTER)
    return logger


def _sole_handler(logger: logging.Logger, level: int) -> _StreamHandler | None:
    """flowcore's own handler when it is the only thing that would see this record, with
    the default format, no extra filters and nothing else listening; else None."""
    parent = logger.parent
    if logger.handlers or len(logger.filters) > 1 or parent is None or parent.name != "flowcore":
        return None
    handlers = parent.handlers
    if len(handlers) != 1 or parent.propagate or len(parent.filters) > 1:
        return None
    handler = handlers[0]
    if (
        type(handler) is not _StreamHandler
        or level < handler.level
        or len(handler.filters) != 1
        or not getattr(handler.formatter, "_plain", False)
    ):
        return None
    return handler


def log(
    logger: logging.Logger,
    level: int,
    message: str,
    sinks: bool = False,
    exc_info: BaseException | None = None,
) -> None:
    """Log a plain message (no arguments) cheaply, with the traceback of ``exc_info``
    after it as ``logger.error(message, exc_info=exc)`` writes it; see the module
    docstring.

    This is how the engine writes its two lines per task run, which restate state changes
    the run store records anyway: line sinks (:func:`add_line_sink`) see them only with
    ``sinks`` (the flow run's own lines, once per pass, and a failure's ERROR line)."""
    if not logger.isEnabledFor(level):
        return
    handler = _sole_handler(logger, level)
    if handler is not None:
        formatter = handler.formatter
        assert isinstance(formatter, _Formatter)
        line = formatter.plain_line(logger.name, level, message)
        if exc_info is not None:
            text = formatter.formatException(_exc_tuple(exc_info))
            if text:  # (as logging.Formatter.format appends it)
                line = f"{line[:-1]}\n{text}\n"
                message = f"{message}\n{text}"
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.stream.flush()
        except BrokenPipeError:
            handler.reader_gone()
        except Exception:
            handler.handleError(_record_for(logger, level, message))
        finally:
            handler.release()
        if sinks and _SINKS:
            _to_sinks(logger.name, level, message, time.time())
        return
    record = _record_for(logger, level, message, exc_info)
    if not sinks:
        record.__dict__["_flowcore_no_sinks"] = True
    logger.handle(record)


def _exc_tuple(exc: BaseException) -> tuple[type[BaseException], BaseException, Any]:
    return type(exc), exc, exc.__traceback__


def _record_for(
    logger: logging.Logger, level: int, message: str, exc_info: BaseException | None = None
) -> logging.LogRecord:
    """An ordinary record, made through the logger's public ``makeRecord`` (so a custom
    record factory is used too), placed where :func:`log` was called (its file, line and
    function, as ``logger.info`` places a record); only used when something besides
    flowcore's own handler listens, or a write failed."""
    try:  # (the caller of log(): two frames of this module above findCaller's)
        path, line, function, _ = logger.findCaller(stacklevel=3)
    except ValueError:  # no frame to find (called from C)
        path, line, function = "(unknown file)", 0, "(unknown function)"
    record = logger.makeRecord(
        logger.name,
        level,
        path,
        line,
        message,
        (),
        None if exc_info is None else _exc_tuple(exc_info),
        function,
    )
    _add_context(record.__dict__)
    return record


configure_logging()


class RedirectToLog(io.TextIOBase):
    """A text stream whose writes become INFO lines of ``logger`` (default
    ``flowcore.stdout``), as Prefect 1's: ``contextlib.redirect_stdout(RedirectToLog())``
    sends ``print`` output to the log. Each non-blank write is one line, as written."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__()
        self.stdout_logger = logger or get_logger("stdout")

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"string argument expected, got {type(s).__name__}")
        if s.strip():
            self.stdout_logger.info(s)
        return len(s)

    def flush(self) -> None:
        for handler in self.stdout_logger.handlers:
            handler.flush()


# The task run whose printed lines go to its log (``stdout_to_log``), in the context the
# task's code runs in: threads of one process each print to their own task's log.
_STDOUT_TARGET: contextvars.ContextVar[LinesToLog | None] = contextvars.ContextVar(
    "flowcore_stdout_target", default=None
)
_STDOUT_LOCK = threading.Lock()
# One router per stream it stands in for, kept as long as that stream lives: Python's
# print does not hold its own reference to sys.stdout while it writes, so a router freed
# when it is taken out of sys.stdout could be freed under another thread's print
_ROUTERS: weakref.WeakKeyDictionary[Any, _StdoutRouter] = weakref.WeakKeyDictionary()
_KEPT_ROUTERS: list[_StdoutRouter] = []  # (for streams that take no weak reference)


def _router_for(stream: Any) -> _StdoutRouter:
    """The router standing in for ``stream`` (``stream`` itself if it is one)."""
    if isinstance(stream, _StdoutRouter):
        return stream
    try:
        router = _ROUTERS.get(stream)
    except TypeError:  # (cannot be weakly referenced, or hashed)
        router = next((r for r in _KEPT_ROUTERS if r.original is stream), None)
    if router is None:
        router = _StdoutRouter(stream)
        try:
            _ROUTERS[stream] = router
        except TypeError:
            _KEPT_ROUTERS.append(router)
    return router


@contextmanager
def stdout_to_log(logger: logging.Logger) -> Iterator[LinesToLog]:
    """While the block runs, lines printed in its context (its thread, and threads started
    with a copy of its context) become INFO lines of ``logger`` (a task's ``log_stdout``).

    ``sys.stdout`` is one stream for the whole process, so it is replaced once, by a
    router (:class:`_StdoutRouter`) that sends each write to the stream of the task run
    whose context writes it (a thread the task starts itself has no such context: its
    lines go to the only task run logging stdout, when there is one), and anything else to
    the stream it replaced; the last block to end puts that stream back (unless something
    replaced the router meanwhile). Tasks running at once on threads each log their own
    lines, and a ``print`` after the run goes where it went before it."""
    stream = LinesToLog(logger)
    with _STDOUT_LOCK:
        router = _router_for(sys.stdout)
        sys.stdout = router
        router.active.append(stream)
    token = _STDOUT_TARGET.set(stream)
    try:
        yield stream
    finally:
        _STDOUT_TARGET.reset(token)
        with _STDOUT_LOCK:
            router.active.remove(stream)
            if not router.active and sys.stdout is router:
                sys.stdout = router.original
        stream.close()


class _StdoutRouter:
    """``sys.stdout`` while task runs log what they print (see :func:`stdout_to_log`)."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.active: list[LinesToLog] = []  # the streams of the task runs logging stdout

    def _target(self) -> Any:
        """The stream of the task run whose context writes; for a thread outside any flow
        run (one a task started itself), the one task run logging stdout if there is one
        (its output, as Prefect 1's redirect caught it); else the stream replaced (for a
        task that does not log stdout, or the flow's own thread)."""
        target = _STDOUT_TARGET.get()
        if target is not None:
            return target
        if _context._scope.get() is None:
            active = self.active[:]  # (a copy: other threads change the list)
            if len(active) == 1:
                return active[0]
        return self.original

    def write(self, s: str) -> int:
        written: int = self._target().write(s)
        return written

    def flush(self) -> None:
        self._target().flush()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer, ...
        return getattr(self.original, name)


class LinesToLog(io.TextIOBase):
    """A text stream whose lines become INFO lines of ``logger`` as each is completed (a
    task's ``log_stdout``): ``print("a", 1)`` is one line, ``a 1``, logged when its newline
    is written, so a long task's output is logged as it goes, in order with what the task
    logs itself. Blank lines are dropped; :meth:`close` logs an unfinished last line."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"string argument expected, got {type(s).__name__}")
        if "\n" not in s:
            self._partial += s
            return len(s)
        *lines, self._partial = (self._partial + s).split("\n")
        for line in lines:
            if line.strip():
                self.logger.info(line)
        return len(s)

    def close(self) -> None:
        if not self.closed:
            partial, self._partial = self._partial, ""
            if partial.strip():
                self.logger.info(partial)
        super().close()
