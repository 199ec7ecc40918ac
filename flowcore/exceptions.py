"""Every error and engine signal flowcore raises, in one place.

The hierarchy has two roots, so that user code written as ``except Exception`` can
never swallow the engine's control flow::

    BaseException
    └── FlowcoreSignal (PrefectSignal)        engine control flow, not errors
        ├── TaskTimeoutSignal                 a task ran past its ``timeout``
        ├── engine.signals.ENDRUN             stops a runner's pipeline with a final state
        └── engine.signals.PrefectStateSignal FAIL, SUCCESS, SKIP, RETRY, PAUSE, LOOP, ...

    Exception
    └── FlowcoreException (PrefectException)  errors flowcore reports to the user
        ├── ResultNotImplementedError         also a NotImplementedError: a base ``Result``
        │                                     cannot store anything
        ├── ResultStorageError                a storage backend (disk, S3, GCS) failed; the
        │   │                                 backend's own error is the ``__cause__``
        │   ├── SignatureError                a stored value's MAC is missing or wrong under
        │   │                                 ``results.signing_key``; it was not unpickled
        │   └── UnreadableValueError          a value exists at a location but cannot be
        │                                     read back (truncated, foreign, unverified)
        ├── LocationEscapeError               also a ValueError: a rendered result location
        │                                     leaves its Result's root directory or prefix
        ├── TemplateKeyError                  also a KeyError and a ValueError: a location
        │                                     template names a key nobody supplied
        ├── DaskTaskError                     a Dask executor could not carry out a task run
        │   │                                 (pickling, importing on a worker, dead workers)
        │   ├── WorkerCrashed                 the worker running the task run died (-> the
        │   │                                 run is Crashed, retried under max_retries)
        │   └── UpstreamCrashed               the task run never started: a run it needs
        │                                     crashed or could not be carried out
        └── MissingExtraError                 also an ImportError: an optional dependency
                                              (an extra) is not installed

Prefect 1's names (``PrefectSignal``, ``PrefectException``) are kept as aliases so that
``except`` clauses written for Prefect 1 keep working after the import rename.
"""

from __future__ import annotations

__all__ = [
    "DaskTaskError",
    "FlowcoreException",
    "FlowcoreSignal",
    "LocationEscapeError",
    "MissingExtraError",
    "PrefectException",
    "PrefectSignal",
    "ResultNotImplementedError",
    "ResultStorageError",
    "ResumeError",
    "SignatureError",
    "TaskTimeoutSignal",
    "TemplateKeyError",
    "UnreadableValueError",
    "UpstreamCrashed",
    "ValueNotFoundError",
    "WorkerCrashed",
]


class FlowcoreSignal(BaseException):
    """Base of the engine's signals; a ``BaseException`` on purpose."""


class TaskTimeoutSignal(FlowcoreSignal):
    """Raised inside a task run that exceeded its ``timeout``; becomes ``TimedOut``."""


class FlowcoreException(Exception):
    """Base of the errors flowcore raises for the user to handle."""


class ResultNotImplementedError(FlowcoreException, NotImplementedError):
    """A storage operation was asked of a ``Result`` that has no storage backend."""


class ResultStorageError(FlowcoreException):
    """Reading, writing or checking a stored result failed in its storage backend."""


class ValueNotFoundError(ResultStorageError, FileNotFoundError):
    """Nothing is stored at the location a Result was asked to read. Also a
    ``FileNotFoundError``, as Prefect 1's ``LocalResult.read`` raised, so that user code
    catching that keeps working (with any storage backend)."""


class SignatureError(ResultStorageError):
    """A stored value failed verification under ``results.signing_key`` (no MAC, or a
    wrong one); it was refused before deserialization, so nothing was unpickled."""


class UnreadableValueError(ResultStorageError):
    """A value exists at a location but cannot be read back (truncated, not in the
    serializer's format, refused by signature verification); the cause is chained."""


class LocationEscapeError(FlowcoreException, ValueError):
    """A rendered result location would leave its Result's root (``..``, an absolute path,
    ``~`` or a symlink in a value interpolated from parameters or inputs), names the root
    itself (``""``, ``"."``: a directory, not a value) or holds a NUL character; nothing
    was read or written. The message names the Result class, the location, the template
    and the root."""


class TemplateKeyError(FlowcoreException, KeyError, ValueError):
    """A location template uses a key that was not supplied.

    A ``KeyError``, as ``str.format`` raised in Prefect 1, and a ``ValueError``; the message
    names the key and lists the known ones.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DaskTaskError(FlowcoreException):
    """A Dask executor could not carry out a task run; the message names the task and the
    cause (the error of Dask or pickle is the ``__cause__`` where there is one)."""


class MissingExtraError(FlowcoreException, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(f"{feature} needs the '{module}' package: pip install 'flowcore[{extra}]'")
        self._parts = (feature, module, extra)
        self.extra = extra

    def __reduce__(self) -> tuple[type[MissingExtraError], tuple[str, str, str]]:
        # rebuilt from the constructor arguments, so it survives a trip from a worker process
        return (type(self), self._parts)


PrefectSignal = FlowcoreSignal
PrefectException = FlowcoreException


class ResumeError(FlowcoreException, ValueError):
    """``flow.run(resume=...)`` cannot resume that run (unknown run, another flow, or
    values it needs that were never checkpointed); raised before any task runs."""


class WorkerCrashed(DaskTaskError):
    """The Dask worker (or pool process) running a task run died while it ran, or died
    holding its result before the driver had collected it; the FlowRunner makes the run
    ``Crashed`` and retries it under ``max_retries``.

    Attributes:
        label: the task run, ``"name"`` or ``"name[index]"``.
        cause: what the executor saw, e.g. ``"KilledWorker: ..."``.
    """

    def __init__(self, label: str, cause: str, message: str | None = None) -> None:
        super().__init__(message or f"Task {label!r}: the Dask worker running it died ({cause})")
        self.label = label
        self.cause = cause

    def __reduce__(self) -> tuple[type[WorkerCrashed], tuple[str, str, str]]:
        return (type(self), (self.label, self.cause, str(self)))


class UpstreamCrashed(DaskTaskError):
    """A task run never started because a run it depends on crashed or could not be
    carried out by the executor; the FlowRunner leaves it unfinished (it runs once its
    upstream is retried, or meets its trigger when the upstream failed for good).

    Attributes:
        label: the task run that never started.
        upstream: the task run it was waiting for.
    """

    def __init__(self, label: str, upstream: str) -> None:
        super().__init__(
            f"Task {label!r} did not run: the run of {upstream!r} it depends on did not finish"
        )
        self.label = label
        self.upstream = upstream

    def __reduce__(self) -> tuple[type[UpstreamCrashed], tuple[str, str]]:
        return (type(self), (self.label, self.upstream))
