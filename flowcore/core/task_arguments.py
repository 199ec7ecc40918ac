"""What a task's arguments may be: the checks and defaults behind ``Task(...)``.

``Task.__init__`` hands each group of its arguments to one function here, which returns
the value the task keeps or raises an error naming the task, the argument and the fix::

    run signature     no *args, no reserved names      validate_run_signature (class, @task)
                      no positional-only parameters    check_positional_only (each task)
    name clashes      a subclass attribute Task sets   warn_of_reserved_attributes (warns)
    tags              an iterable of str, not a str    tag_set
    retries           max_retries, retry_delay,        retry_settings, retry_on_types
                      retry_on; config defaults
    timeout           int seconds or a timedelta       timeout_seconds
    Prefect 1 cache   cache_for, cache_validator,      check_cache_arguments,
                      cache_key, refresh_cache         cache_validator_for (the default)
    state handlers    a list; on_failure appended      state_handler_list
    result, target    a str target relocates a copy    result_for_target (copy() too)
    cache policy      cache_policy or cache_key_fn     cache_policy_for, check_cache_version
    map batch size    a positive int or None           check_batch_size (map, flow.run)

An argument left as None takes ``config.tasks.defaults.<name>`` where there is one
(``max_retries``, ``retry_delay``, ``timeout``); a bad config value is an error naming the
setting. The checks run when the task is made, so a mistake surfaces while the flow is
built, not when the task first runs.
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flowcore import configuration
from flowcore.engine import cache_validators

if TYPE_CHECKING:
    from flowcore.core.task import Task
    from flowcore.engine.result import Result
    from flowcore.engine.state import State

__all__ = [
    "RESERVED_ARGUMENTS",
    "cache_policy_for",
    "cache_validator_for",
    "check_batch_size",
    "check_cache_arguments",
    "check_cache_version",
    "check_positional_only",
    "failure_callback",
    "result_for_target",
    "retry_on_types",
    "retry_settings",
    "state_handler_list",
    "tag_set",
    "timeout_seconds",
    "validate_run_signature",
    "warn_of_reserved_attributes",
]

_RESERVED_ORDER = ("upstream_tasks", "mapped", "task_args", "flow")
RESERVED_ARGUMENTS = frozenset(_RESERVED_ORDER)
_RESERVED_ATTRIBUTES = frozenset(
    {
        "name",
        "slug",
        "tags",
        "max_retries",
        "retry_delay",
        "retry_on",
        "timeout",
        "trigger",
        "skip_on_upstream_skip",
        "cache_for",
        "cache_key",
        "cache_validator",
        "checkpoint",
        "result",
        "target",
        "task_run_name",
        "state_handlers",
        "auto_generated",
        "log_stdout",
        "nout",
        "cache_policy",
        "cache_expiration",
        "refresh_cache",
        "cache_version",
        "hash_file_contents",
    }
)
_LONGEST_CACHE = timedelta(days=365 * 7000)  # now + this stays inside datetime's range

_POSITIONAL_ONLY: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
_CLASS_CLASHES: weakref.WeakKeyDictionary[type, frozenset[str]] = weakref.WeakKeyDictionary()


# -- the run signature --------------------------------------------------------------------


def validate_run_signature(run: Callable[..., Any], owner: str) -> None:
    """Reject ``run`` signatures the flow API cannot bind (at class or task creation).

    Positional-only parameters are checked later, when a task is created
    (:func:`check_positional_only`), as in Prefect 1.
    """
    try:
        params = inspect.signature(run).parameters.values()
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "This function can not be inspected (this is common with `builtin` and `numpy` "
            "functions). In order to use it as a task, please wrap it in a standard Python "
            f"function. ({owner}: {exc})"
        ) from exc
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        raise ValueError(
            "Tasks with variable positional arguments (*args) are not supported, because "
            f"all flowcore arguments are stored as keywords. As a workaround, {owner} can accept "
            "**kwargs in run() instead."
        )
    reserved = [name for name in _RESERVED_ORDER if name in {p.name for p in params}]
    if reserved:
        raise ValueError(
            f"Tasks cannot have the following argument names: {', '.join(reserved)}. "
            f"These are reserved keyword arguments. Rename them in run() of {owner}."
        )


def check_positional_only(task: Task) -> None:
    """Raise TypeError if ``task.run`` has positional-only parameters (arguments are
    always passed by keyword). Memoised per function: tasks are created often."""
    function = getattr(task.run, "__func__", task.run)
    try:
        positional = _POSITIONAL_ONLY[function]
    except (KeyError, TypeError):
        positional = [
            name
            for name, param in task._run_signature().parameters.items()
            if param.kind is inspect.Parameter.POSITIONAL_ONLY
        ]
        try:
            _POSITIONAL_ONLY[function] = positional
        except TypeError:
            pass
    if positional:
        raise TypeError(
            "Found positional-only parameters in the function signature for task "
            f"{task.name}: {positional}. flowcore passes arguments using keywords and does "
            "not support positional-only parameters."
        )


# -- names, tags, handlers ----------------------------------------------------------------


def warn_of_reserved_attributes(task: Task) -> None:
    """Warn once per attribute that ``task``'s class (or its constructor, before calling
    ``Task.__init__``) set and that ``Task.__init__`` is about to overwrite."""
    clashes = _class_clashes(type(task)) | (set(task.__dict__) & _RESERVED_ATTRIBUTES)
    for attr in sorted(clashes):
        warnings.warn(
            f"`{type(task).__name__}` sets a `{attr}` attribute, which will be "
            "overwritten by `flowcore.Task`. Please rename this attribute to avoid this "
            "issue (Task.__init__ sets it on every instance).",
            stacklevel=3,  # the caller of Task.__init__
        )


def _class_clashes(cls: type) -> frozenset[str]:
    """Reserved names that a Task subclass defines at class level (the instance attribute
    Task.__init__ sets hides them). Memoised per class."""
    found = _CLASS_CLASHES.get(cls)
    if found is None:
        from flowcore.core.task import Task

        found = _CLASS_CLASHES[cls] = frozenset(
            name
            for klass in cls.__mro__
            if klass is not Task and issubclass(klass, Task)
            for name in vars(klass)
            if name in _RESERVED_ATTRIBUTES
        )
    return found


def tag_set(name: str, tags: Iterable[str] | None) -> set[str]:
    """The task's own tags; a lone str is an error (it would become a set of letters)."""
    if isinstance(tags, str):
        raise TypeError(
            f"Tags should be a set of tags, not a string. Task {name!r} got "
            f"tags={tags!r}; write tags=[{tags!r}]."
        )
    return set(tags or ())


def state_handler_list(
    name: str,
    state_handlers: Sequence[Callable[..., State | None]] | None,
    on_failure: Callable[[Task, State], None] | None,
) -> list[Callable[..., State | None]]:
    """The task's state handlers, with ``on_failure`` (if any) made one and put last."""
    if state_handlers is not None and not isinstance(state_handlers, Sequence):
        raise TypeError(
            f"state_handlers should be iterable. Task {name!r} got a "
            f"{type(state_handlers).__name__}; pass a list of callables."
        )
    handlers = list(state_handlers or [])
    if on_failure is not None:
        handlers.append(failure_callback(on_failure))
    return handlers


def failure_callback(on_failure: Callable[[Task, State], None]) -> Callable[..., State]:
    """A state handler that calls ``on_failure(task, state)`` when the state is failed."""

    def on_failure_handler(task: Task, old_state: State, new_state: State) -> State:
        if new_state.is_failed():
            on_failure(task, new_state)
        return new_state

    on_failure_handler.__name__ = getattr(on_failure, "__name__", "on_failure")
    return on_failure_handler


def result_for_target(result: Result | None, target: Any, name: str) -> Result | None:
    """With both a result and a str target, a copy of the result located at the target."""
    if result is None or target is None:
        return result
    new = result.copy()
    if isinstance(target, str):
        if result.location is not None and result.location != target:
            warnings.warn(
                "Both `result.location` and `target` were provided. The `target` value will "
                f"be used. Task {name!r}: result.location={result.location!r}, "
                f"target={target!r}.",
                stacklevel=3,  # the caller of Task.__init__ or Task.copy
            )
        new.location = target
        new._formatter = None
    else:
        new.location = None
        new._formatter = target
    return new


# -- retries and timeout ------------------------------------------------------------------


def retry_settings(
    name: str, max_retries: int | None, retry_delay: timedelta | None, retry_on: Any
) -> tuple[int, timedelta | None]:
    """``(max_retries, retry_delay)``, None taking the config default; each needs the
    other, and ``retry_on`` needs retries."""
    if max_retries is None:
        max_retries = _config_default("max_retries", _is_retry_count) or 0
    if retry_delay is None and max_retries:
        retry_delay = _to_retry_delay(_config_default("retry_delay", _is_delay_seconds))
    if max_retries and max_retries > 0 and retry_delay is None:
        raise ValueError(
            "A datetime.timedelta `retry_delay` must be provided if max_retries > 0. "
            f"Task {name!r} has max_retries={max_retries}; add e.g. "
            "retry_delay=timedelta(seconds=10)."
        )
    if retry_on and not (max_retries and max_retries > 0):
        raise ValueError(
            "A number of `max_retries` must be provided if `retry_on` is set. Give task "
            f"{name!r} e.g. max_retries=3, retry_delay=timedelta(seconds=10)."
        )
    if retry_delay is not None and not max_retries:
        raise ValueError(
            "A `max_retries` argument greater than 0 must be provided if specifying a "
            f"retry delay. Task {name!r} has max_retries={max_retries!r}; give "
            "max_retries > 0 or drop retry_delay."
        )
    return max_retries, retry_delay


def retry_on_types(
    name: str, retry_on: type[Exception] | Iterable[type[Exception]] | None
) -> set[type[Exception]] | None:
    """The exception types a failure must be one of to be retried (None: any)."""
    if not retry_on:
        return None
    if isinstance(retry_on, type) or not isinstance(retry_on, Iterable):
        types = {retry_on}
    else:
        types = set(retry_on)
    for exc_type in types:
        if not isinstance(exc_type, type):
            raise TypeError(
                f"Invalid `retry_on` value {exc_type!r}. Expected an exception type but "
                f"got an instance of {type(exc_type).__name__}. Task {name!r} takes "
                "Exception subclasses, e.g. retry_on={ValueError}."
            )
        if not issubclass(exc_type, Exception):
            raise TypeError(
                f"Invalid `retry_on` value {exc_type!r}. Expected an exception subclass. "
                f"Task {name!r} takes Exception subclasses, e.g. retry_on={{ValueError}}."
            )
    return types


def timeout_seconds(name: str, timeout: int | timedelta | None) -> int | None:
    """The timeout in whole seconds (None: none), None taking the config default."""
    if timeout is None:
        timeout = _config_default("timeout", _is_timeout)
        if timeout is None:
            return None
    if not isinstance(timeout, (int, timedelta)) or isinstance(timeout, bool):
        raise TypeError(
            "Only integer timeouts (representing seconds) are supported. Task "
            f"{name!r} got {type(timeout).__name__} {timeout!r}; use an int or a "
            "timedelta."
        )
    if (timeout.total_seconds() if isinstance(timeout, timedelta) else timeout) < 0:
        raise ValueError(
            f"Task {name!r}: timeout={timeout!r} is negative; give the time the "
            "task may run (more than 0), or None for no timeout"
        )
    if isinstance(timeout, timedelta):
        seconds = int(timeout.total_seconds())
        if timeout.total_seconds() != seconds:
            warnings.warn(
                "Task timeouts do not support a sub-second resolution; smaller units "
                f"will be ignored! Task {name!r}: {timeout} is truncated to "
                f"{seconds}s.",
                stacklevel=3,  # the caller of Task.__init__
            )
        return seconds
    return timeout


def _config_default(key: str, valid: Callable[[Any], bool]) -> Any:
    """``config.tasks.defaults.<key>``, checked by ``valid``: a value a task cannot take is
    an error naming the setting, where it comes from and what it may be."""
    value = configuration.config.tasks.defaults.get(key)
    if value is None or value is False or valid(value):
        return value
    kinds = {
        "max_retries": "a whole number of retries (0 or more)",
        "retry_delay": "a number of seconds (or a timedelta)",
        "timeout": "a whole number of seconds (or a timedelta)",
    }
    raise ValueError(
        f"config tasks.defaults.{key} is {value!r}, which is not {kinds[key]}; fix it in "
        f"~/.flowcore/config.toml or FLOWCORE__TASKS__DEFAULTS__{key.upper()}, or pass "
        f"{key}= to the task"
    )


def _is_retry_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_delay_seconds(value: Any) -> bool:
    if isinstance(value, timedelta):
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _is_timeout(value: Any) -> bool:
    return isinstance(value, timedelta) or _is_retry_count(value)


def _to_retry_delay(value: Any) -> timedelta | None:
    if value is None or value is False:
        return None
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)


# -- caching ------------------------------------------------------------------------------


def check_cache_arguments(
    name: str,
    cache_for: Any,
    validator: Any,
    key: Any,
    expiration: Any,
    refresh_cache: Any,
) -> None:
    """Caching arguments are checked when the task is made, not when it first runs."""
    for argument, value in (("cache_for", cache_for), ("cache_expiration", expiration)):
        if value is not None:
            _check_cache_duration(name, argument, value)
    if validator is not None:
        _check_validator(name, validator)
    _check_cache_key(name, key)
    if refresh_cache not in (None, True, False):
        raise TypeError(
            f"Task {name!r}: refresh_cache={refresh_cache!r} must be True (always run "
            "and replace the cache), False (never refresh) or None (follow the config "
            "tasks.refresh_cache)"
        )


def _check_cache_duration(name: str, argument: str, value: Any) -> None:
    """``cache_for`` or ``cache_expiration``: a positive timedelta whose expiry is a date."""
    if not isinstance(value, timedelta):
        raise TypeError(
            f"Task {name!r}: {argument}={value!r} must be a datetime.timedelta, "
            f"e.g. {argument}=timedelta(seconds={value!r})"
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else f"Task {name!r}: {argument}={value!r} must be a datetime.timedelta, "
            f"e.g. {argument}=timedelta(hours=1)"
        )
    if value <= timedelta(0):
        raise ValueError(
            f"Task {name!r}: {argument}=timedelta(seconds={value.total_seconds():g}) must "
            "be a positive timedelta (a "
            "non-positive one would expire every value at once); e.g. timedelta(hours=1)"
        )
    if value > _LONGEST_CACHE:
        raise ValueError(
            f"Task {name!r}: {argument}=timedelta(days={value.days}) is too long: at most "
            f"timedelta(days={_LONGEST_CACHE.days}) (about 7000 years, so that the expiry "
            f"stays a date); for values that never expire use e.g. "
            f"{argument}=timedelta(days=365 * 1000)"
        )


def _check_validator(name: str, validator: Any) -> None:
    """A cache validator must be callable as ``validator(state, inputs, parameters)``."""
    if not callable(validator):
        hint = (
            f"flowcore.engine.cache_validators.{validator}"
            if isinstance(validator, str)
            else "a function from flowcore.engine.cache_validators"
        )
        raise TypeError(
            f"Task {name!r}: cache_validator={validator!r} must be callable "
            f"(validator(state, inputs, parameters) -> bool); use {hint}"
        )
    factories = {
        cache_validators.partial_inputs_only: "inputs",
        cache_validators.partial_parameters_only: "parameters",
    }
    what = next((what for f, what in factories.items() if f is validator), None)
    if what is not None:
        raise TypeError(
            f"Task {name!r}: cache_validator={validator.__name__} makes a validator, it is not "
            f"one: call it with the {what} to compare, e.g. "
            f"cache_validator={validator.__name__}(['x'])"
        )
    try:
        inspect.signature(validator).bind(None, None, None)
    except ValueError:  # no signature to read (some builtins): it is taken on trust
        return
    except TypeError as exc:
        raise TypeError(
            f"Task {name!r}: cache_validator={validator!r} cannot be called as "
            f"validator(state, inputs, parameters) ({exc}); see "
            "flowcore.engine.cache_validators for ready-made ones"
        ) from None


def _check_cache_key(name: str, key: Any) -> None:
    """``cache_key``: None or a non-empty str."""
    if key is not None and not isinstance(key, str):
        raise TypeError(
            f"Task {name!r}: cache_key={key!r} must be a str (the name records are kept "
            f"under), e.g. cache_key={str(key)!r}"
        )
    if key == "":
        raise ValueError(
            f"Task {name!r}: cache_key='' must not be empty (the name records are kept "
            "under); leave cache_key out to keep them under the task's name"
        )


def cache_validator_for(
    name: str, cache_for: timedelta | None, validator: Callable[..., bool] | None
) -> Callable[..., bool]:
    """The validator the task keeps: the given one (a warning when, without ``cache_for``,
    it has nothing to validate), else ``never_use`` or, with ``cache_for``,
    ``duration_only``."""
    if cache_for is None and validator is not None:
        if validator is not cache_validators.never_use:
            warnings.warn(
                "cache_validator provided without specifying cache expiration "
                f"(cache_for); this Task will not be cached. Give task {name!r} "
                "cache_for=timedelta(...) to cache it.",
                stacklevel=3,  # the caller of Task.__init__
            )
    if validator is None:
        return cache_validators.never_use if cache_for is None else cache_validators.duration_only
    return validator


def cache_policy_for(
    name: str, policy: Any, key_fn: Any, expiration: Any, cache_for: timedelta | None
) -> Any:
    """The policy spelling of caching (``flowcore.cache_policies``), validated: the
    policy, one made of ``key_fn``, or None. (Its modules are imported only for a task
    that uses it.)"""
    if key_fn is None and policy is None:
        if expiration is not None:
            raise ValueError(
                f"Task {name!r}: cache_expiration needs a cache_policy or cache_key_fn"
            )
        return None
    from flowcore import cache_policies
    from flowcore.transactions import IsolationLevel

    if key_fn is not None:
        policy = _key_fn_policy(name, policy, key_fn)
    if not isinstance(policy, cache_policies.CachePolicy):
        raise TypeError(
            f"Task {name!r}: cache_policy={policy!r} must be a flowcore.cache_policies "
            f"policy (e.g. cache_policies.INPUTS), got a {type(policy).__name__}"
        )
    if cache_for is not None:
        raise ValueError(
            f"Task {name!r}: use either Prefect 1 caching (cache_for, "
            "cache_validator, cache_key) or a cache policy, not both"
        )
    if policy.isolation_level is IsolationLevel.SERIALIZABLE and policy.lock_manager is None:
        raise ValueError(
            f"Task {name!r}: isolation_level=SERIALIZABLE needs a lock manager: "
            "policy.configure(isolation_level=..., lock_manager=MemoryLockManager())"
        )
    return policy


def _key_fn_policy(name: str, policy: Any, key_fn: Any) -> Any:
    """``cache_key_fn=fn`` as the policy ``CacheKeyFnPolicy(fn)`` (never with a policy)."""
    from flowcore import cache_policies

    if policy is not None:
        raise ValueError(
            f"Task {name!r}: give cache_policy or cache_key_fn, not both "
            "(combine them with cache_policy=CacheKeyFnPolicy(fn) + POLICY)"
        )
    if not callable(key_fn):
        raise TypeError(
            f"Task {name!r}: cache_key_fn={key_fn!r} must be callable "
            "(fn(context, inputs) -> str | None)"
        )
    return cache_policies.CacheKeyFnPolicy(key_fn)


def check_cache_version(name: str, cache_version: Any) -> None:
    """``cache_version``: None, a str or an int."""
    if cache_version is not None and not isinstance(cache_version, (str, int)):
        raise TypeError(
            f"Task {name!r}: cache_version={cache_version!r} must be a str (or int), "
            "e.g. cache_version='2'"
        )


# -- mapping ------------------------------------------------------------------------------


def check_batch_size(value: Any, where: str) -> int | None:
    """``value`` as a mapped task's batch size (None: automatic; ``engine/batches.py``);
    anything but a positive int is an error naming ``where`` it was given.

    >>> check_batch_size(100, "t.map(batch_size=...)"), check_batch_size(None, "")
    (100, None)
    >>> check_batch_size(0, "t.map(batch_size=...)")
    Traceback (most recent call last):
    ...
    ValueError: t.map(batch_size=...): batch size must be a positive int (1 = one executor call per child), or None for automatic; got 0
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{where}: batch size must be a positive int (1 = one executor call per "
            f"child), or None for automatic; got {value!r}"
        )
    return value
