"""``flowcore.config``: packaged defaults, then the user's TOML file, then the environment.

Load order (later wins), as in Prefect 1 with ``flowcore`` in place of ``prefect``:

1. the defaults below;
2. ``~/.flowcore/config.toml`` (path overridable with ``FLOWCORE__USER_CONFIG_PATH``);
3. environment variables ``FLOWCORE__SECTION__KEY=value``: keys are lower-cased (except
   below ``context.secrets``) and values are cast (``true``/``false``, ints, floats,
   Python literals such as lists); anything else stays a string.

The result is a :class:`Config`, a nested ``DotDict``: ``config.flows.checkpointing``.
Unlike Prefect 1, the context reads the *live* config object, so assigning
``flowcore.config.flows.checkpointing = True`` after import takes effect on the next run.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Mapping
from typing import Any

from flowcore.utilities.collections import DotDict, as_nested_dict, merge_dicts

__all__ = ["Config", "DEFAULTS", "config", "load_configuration"]

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
    "caching": {"store": "memory"},
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
    """Nested configuration with attribute access; ``Config.copy`` is deep."""

    def copy(self) -> Config:
        return as_nested_dict(self, Config)  # type: ignore[no-any-return]

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
    """Cast an environment string the way Prefect 1 does.

    >>> cast_env_value("true"), cast_env_value("3"), cast_env_value("0.5")
    (True, 3, 0.5)
    >>> cast_env_value("[1, 2]"), cast_env_value("s3://bucket/x")
    ([1, 2], 's3://bucket/x')
    """
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    if raw.strip()[:1] in ("[", "{", "("):
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            pass
    return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    prefix = ENV_PREFIX + "__"
    for name, raw in environ.items():
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].split("__")
        if parts[:2] == ["CONTEXT", "SECRETS"] and len(parts) > 2:
            parts = ["context", "secrets", "__".join(parts[2:])]
        else:
            parts = [p.lower() for p in parts]
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = cast_env_value(raw)
    return overrides


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    with open(path, "rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"flowcore config file {path} is not valid TOML: {exc}") from exc


def load_configuration(environ: Mapping[str, str] | None = None) -> Config:
    """Build a fresh :class:`Config` from defaults, the user file and ``environ``."""
    environ = os.environ if environ is None else environ
    env = _env_overrides(environ)
    merged = merge_dicts(DEFAULTS, {})
    user_path = env.get("user_config_path", merged["user_config_path"])
    user_path = os.path.expanduser(str(user_path))
    if os.path.isfile(user_path):
        merged = merge_dicts(merged, _read_toml(user_path))
    merged = merge_dicts(merged, env)
    tasks_defaults = merged["tasks"]["defaults"]
    if tasks_defaults.get("max_retries") is False:
        tasks_defaults["max_retries"] = 0
    if tasks_defaults.get("retry_delay") is False:
        tasks_defaults["retry_delay"] = None
    return as_nested_dict(merged, Config)  # type: ignore[no-any-return]


config: Config = load_configuration()
