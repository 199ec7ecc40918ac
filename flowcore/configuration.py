"""``flowcore.config``: packaged defaults, then the user's TOML file, then the environment.

Load order (later wins), as in Prefect 1 with ``flowcore`` in place of ``prefect``:

1. the defaults below;
2. ``~/.flowcore/config.toml`` (path overridable with ``FLOWCORE__USER_CONFIG_PATH``);
3. environment variables ``FLOWCORE__SECTION__KEY=value``: keys are lower-cased (except
   below ``context.secrets``).

Then, as in Prefect 1, every string value is interpolated and cast: ``$VAR`` / ``${VAR}``
and ``~`` are expanded, the result is cast (``true``/``false`` in any case, then any Python
literal: ints, floats, lists, ``None``...; anything else stays a string), and
``${section.key}`` is replaced by that config value. Last, the task defaults are
normalised: a false ``max_retries`` is 0, ``retry_delay``/``timeout`` false is None, and an
int ``retry_delay`` is a number of seconds.

The result is a :class:`Config`, a nested ``DotDict``: ``config.flows.checkpointing``.
Unlike Prefect 1, the context reads the *live* config object, so assigning
``flowcore.config.flows.checkpointing = True`` after import takes effect on the next run.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flowcore.utilities.collections import DotDict, as_nested_dict, merge_dicts

__all__ = [
    "Config",
    "DEFAULTS",
    "config",
    "load_configuration",
    "process_task_defaults",
    "string_to_type",
]

ENV_PREFIX = "FLOWCORE"

DEFAULTS: dict[str, Any] = {
    "home_dir": "~/.flowcore",
    "user_config_path": "~/.flowcore/config.toml",
    "debug": False,
    "flows": {
        "checkpointing": False,
        "run_on_schedule": True,
        "eager_edge_validation": False,
    },
    "tasks": {
        "defaults": {"max_retries": 0, "retry_delay": None, "timeout": None},
        "refresh_cache": False,
    },
    "caching": {
        "store": None,
        # after a flow run, at most once per `every`: gc of the run's storage store
        "gc": {"max_age": None, "max_size": None, "max_entries": None, "every": "1h"},
    },
    "results": {"signing_key": None},
    # the run store: "sqlite" (<home_dir>/flowcore.db), a path, a SQLAlchemy URL, or "none"
    "runs": {"store": "sqlite", "retention_days": 30, "max_runs": 1000, "max_log_lines": 10000},
    # flowcore ui: the token every request must carry (None: none, on 127.0.0.1 only)
    "ui": {"token": None},
    "engine": {
        "executor": {
            "default_class": "flowcore.executors.LocalExecutor",
            "dask": {
                "address": "",
                "cluster_class": "distributed.deploy.local.LocalCluster",
            },
        },
        "flow_runner": {"default_class": "flowcore.engine.flow_runner.FlowRunner"},
        "task_runner": {"default_class": "flowcore.engine.task_runner.TaskRunner"},
        # while flows run, the garbage collector's first threshold is at least this
        # (flowcore.utilities.garbage); 0 leaves the collector alone
        "gc_threshold": 10_000,
    },
    "logging": {
        "level": "INFO",
        "format": "[%(asctime)s] %(levelname)s - %(name)s | %(message)s",
        "datefmt": "%Y-%m-%d %H:%M:%S%z",
        "log_attributes": [],
        "extra_loggers": [],
    },
    "context": {"secrets": {}},
}


class Config(DotDict):
    """Nested configuration with attribute access; ``Config.copy`` is deep.

    ``Config(default_box=True)`` creates missing sections on first attribute access, as
    Prefect 1's Box-based ``Config`` does (``cfg.tasks.defaults.max_retries = 0`` on an
    empty one); without it a missing key is an ``AttributeError``.

    >>> cfg = Config(default_box=True)
    >>> cfg.a.b = 1
    >>> cfg
    Config({'a': {'b': 1}})
    """

    def __init__(self, *args: Any, default_box: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self.update(*args, **kwargs)
        if default_box:
            object.__setattr__(self, "_default_box", True)

    # A mapping stored in a Config becomes a Config (as Prefect 1's Box-based one makes it
    # on access), so ``config.section = {"key": 1}`` reads back as ``config.section.key``.

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, Mapping) and not isinstance(value, Config):
            value = as_nested_dict(value, Config)
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            if name.startswith("__") or not self.__dict__.get("_default_box"):
                raise AttributeError(
                    f"'{type(self).__name__}' object has no attribute {name!r}"
                ) from None
            self[name] = section = Config(default_box=True)
            return section

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def __str__(self) -> str:
        return str(self.to_dict())

    def copy(self) -> Config:
        """New sections all the way down; values (lists included) are shared, as in Prefect 1."""
        return Config({k: v.copy() if isinstance(v, Config) else v for k, v in self.items()})

    def get_path(self, dotted: str, default: Any = None) -> Any:
        """Read ``"a.b.c"``; ``default`` when any part is missing."""
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def set_path(self, dotted: str, value: Any) -> None:
        """Write ``"a.b.c"``, creating the sections on the way."""
        node: Any = self
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, Config())
        node[last] = value


def cast_env_value(raw: str) -> Any:
    """Cast a config string the way Prefect 1 does: booleans, then any Python literal.

    >>> cast_env_value("TRUE"), cast_env_value("3"), cast_env_value("0.5"), cast_env_value("None")
    (True, 3, 0.5, None)
    >>> cast_env_value("[1, 2]"), cast_env_value("s3://bucket/x"), cast_env_value("INFO")
    ([1, 2], 's3://bucket/x', 'INFO')
    """
    if raw.upper() == "TRUE":
        return True
    if raw.upper() == "FALSE":
        return False
    try:
        return ast.literal_eval(raw)
    except Exception:
        return raw


string_to_type = cast_env_value
"""Prefect 1's name for :func:`cast_env_value`."""

_ENV_VAR = re.compile(r"\$(\w+|\{[^}]*\})")
_CONFIG_REF = re.compile(r"\$\{(.[^${}]*)\}")


def _expand(value: str, environ: Mapping[str, str]) -> str:
    """``os.path.expandvars`` over ``environ``, then ``expanduser``, until nothing changes."""

    def var(match: re.Match[str]) -> str:
        name = match.group(1).strip("{}")
        return environ.get(name, match.group(0))

    for _ in range(10):
        expanded = os.path.expanduser(_ENV_VAR.sub(var, value))
        if expanded == value:
            break
        value = expanded
    return value


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, prefix + (key,)))
        else:
            flat[prefix + (key,)] = value
    return flat


def _interpolate(tree: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    flat = _flatten(tree)
    for key, value in flat.items():
        if isinstance(value, str):
            flat[key] = cast_env_value(_expand(value, environ))
    pending = set(flat)
    for _ in range(10):
        for key in list(pending):
            value = flat[key]
            match = _CONFIG_REF.search(value) if isinstance(value, str) else None
            if match is None:
                pending.discard(key)
                continue
            ref = flat.get(tuple(match.group(1).split(".")), "")
            if value == match.group(0):
                flat[key] = ref
            else:
                flat[key] = value.replace(match.group(0), str(ref), 1)
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return nested


def _normalise_task_defaults(tree: dict[str, Any]) -> None:
    defaults = tree.setdefault("tasks", {}).setdefault("defaults", {})
    defaults["max_retries"] = defaults.get("max_retries") or 0
    retry_delay = defaults.get("retry_delay", False)
    if retry_delay is False or retry_delay is None:
        defaults["retry_delay"] = None
    elif isinstance(retry_delay, int):
        defaults["retry_delay"] = timedelta(seconds=retry_delay)
    if defaults.get("timeout", False) is False:
        defaults["timeout"] = None


def process_task_defaults(config: Config) -> Config:
    """Give ``config.tasks.defaults`` the values ``Task()`` expects, in place, as Prefect 1 does.

    A missing, false or ``None`` ``max_retries`` becomes 0, a missing or false ``retry_delay``
    becomes ``None`` and a number of seconds a ``timedelta``, a missing or false ``timeout``
    ``None``. ``flowcore.config`` is already processed; call this after changing its task
    defaults by hand (TOML has no null, so ``false`` stands for "not set").

    >>> cfg = process_task_defaults(Config(tasks=Config(defaults=Config(retry_delay=5))))
    >>> cfg.tasks.defaults.max_retries, cfg.tasks.defaults.retry_delay
    (0, datetime.timedelta(seconds=5))
    """
    config.setdefault("tasks", Config()).setdefault("defaults", Config())
    _normalise_task_defaults(config)
    return config


def _env_overrides(environ: Mapping[str, str], env_prefix: str = ENV_PREFIX) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    prefix = env_prefix + "__"
    for name, raw in environ.items():
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].split("__")
        if [p.upper() for p in parts[:2]] == ["CONTEXT", "SECRETS"] and len(parts) > 2:
            parts = ["context", "secrets", "__".join(parts[2:])]
        else:
            parts = [p.lower() for p in parts]
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = raw
    return overrides


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    with open(path, "rb") as fh:
        try:
            loaded: dict[str, Any] = tomllib.load(fh)
            return loaded
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"flowcore config file {path} is not valid TOML: {exc}") from exc


def _check_keys(tree: Mapping[str, Any], where: str = "") -> None:
    """A key that is also a ``Config`` attribute (``keys``, ``items``, ``copy``...) could
    not be read as ``config.section.key``; refuse it, as Prefect 1 does."""
    for key, value in tree.items():
        if key in _RESERVED_KEYS:
            raise ValueError(
                f'Invalid config key: "{key}" (at {where + key}): it is the name of a Config '
                "method, so config.<section>.<key> could not read it; rename the key"
            )
        if isinstance(value, Mapping):
            _check_keys(value, f"{where}{key}.")


_RESERVED_KEYS = frozenset(dir(Config))


def load_configuration(
    path: str | None = None,
    user_config_path: str | None = None,
    env_var_prefix: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build a fresh :class:`Config`.

    With no arguments: flowcore's defaults, the user file (``user_config_path``, default
    ``~/.flowcore/config.toml``), then ``FLOWCORE__*`` variables of ``environ`` (default
    ``os.environ``), with the task defaults normalised; this is ``flowcore.config``.

    With ``path`` (Prefect 1's signature): the TOML file at ``path`` stands in for the
    defaults, ``user_config_path`` (if the file exists) is merged over it, and variables
    are read only when ``env_var_prefix`` is given (``PREFIX__SECTION__KEY``). Either way
    values are interpolated and cast, and a key named like a ``Config`` method is a
    ``ValueError``.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        tree = merge_dicts(DEFAULTS, {})
        prefix: str | None = env_var_prefix or ENV_PREFIX
    else:
        tree = _read_toml(_expand(path, environ))
        prefix = env_var_prefix
    env = _env_overrides(environ, prefix) if prefix else {}
    user_path = user_config_path
    if user_path is None and path is None:
        user_path = env.get("user_config_path", tree["user_config_path"])
    if user_path is not None:
        user_path = _expand(str(user_path), environ)
        if os.path.isfile(user_path):
            tree = merge_dicts(tree, _read_toml(user_path))
    merged = _interpolate(merge_dicts(tree, env), environ)
    _check_keys(merged)
    if path is None:
        _normalise_task_defaults(merged)
    return as_nested_dict(merged, Config)  # type: ignore[no-any-return]


config: Config = load_configuration()
