"""``flowcore.config``: defaults, user TOML, environment overrides, normalisation, live reads."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import pytest

import flowcore
from flowcore import Flow, configuration, context, task
from flowcore.configuration import (
    Config,
    cast_env_value,
    load_configuration,
    process_task_defaults,
    string_to_type,
)
from flowcore.engine.result import Result
from flowcore.utilities.configuration import set_temporary_config


class DictResult(Result):
    """A real in-memory backend: the three storage primitives over a dict."""

    def __init__(self, store: dict[str, bytes], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store

    def _read_bytes(self, location: str) -> bytes:
        return self.store[location]

    def _write_bytes(self, location: str, data: bytes) -> None:
        self.store[location] = data

    def _exists(self, location: str) -> bool:
        return location in self.store


@pytest.fixture
def no_user_file(tmp_path: Path) -> dict[str, str]:
    """An environment whose user config file does not exist."""
    return {"FLOWCORE__USER_CONFIG_PATH": str(tmp_path / "missing.toml")}


def load(env: dict[str, str], **extra: str) -> Config:
    return load_configuration(environ={**env, **extra})


# -- defaults -------------------------------------------------------------------------


def test_defaults(no_user_file: dict[str, str]) -> None:
    config = load(no_user_file)
    assert config.flows.checkpointing is False
    assert config.flows.run_on_schedule is True
    assert config.flows.eager_edge_validation is False
    assert config.tasks.defaults == {"max_retries": 0, "retry_delay": None, "timeout": None}
    assert config.engine.executor.default_class == "flowcore.executors.LocalExecutor"
    assert config.engine.executor.dask.address == ""
    assert config.engine.executor.dask.cluster_class == "distributed.deploy.local.LocalCluster"
    assert config.engine.flow_runner.default_class == "flowcore.engine.flow_runner.FlowRunner"
    assert config.engine.task_runner.default_class == "flowcore.engine.task_runner.TaskRunner"
    assert config.debug is False
    assert config.logging.level == "INFO"
    assert config.logging.format == "[%(asctime)s] %(levelname)s - %(name)s | %(message)s"
    assert config.logging.datefmt == "%Y-%m-%d %H:%M:%S%z"
    assert config.logging.log_attributes == [] and config.logging.extra_loggers == []
    assert config.context.secrets == {}


def test_home_dir_is_user_expanded(no_user_file: dict[str, str]) -> None:
    # Prefect 1 expands "~" in every config string (prefect.config.home_dir == "/root/.prefect")
    assert load(no_user_file).home_dir == os.path.expanduser("~/.flowcore")


def test_config_is_nested_config_objects_with_attribute_access(
    no_user_file: dict[str, str],
) -> None:
    config = load(no_user_file)
    assert isinstance(config, Config) and isinstance(config.flows, Config)
    assert config["flows"]["checkpointing"] is config.flows.checkpointing
    # Prefect 1.4.1's text: "'Config' object has no attribute 'nope'"
    with pytest.raises(AttributeError, match="^'Config' object has no attribute 'nope'$"):
        config.nope  # noqa: B018


def test_config_copy_is_deep_for_sections(no_user_file: dict[str, str]) -> None:
    config = load(no_user_file)
    clone = config.copy()
    clone.flows.checkpointing = True
    assert config.flows.checkpointing is False
    assert isinstance(clone.flows, Config)


def test_config_copy_shares_values_as_prefect_does() -> None:
    # Prefect 1.4.1: sections are new objects, values (a list) are shared with the original
    config = Config(a=Config(items_=[1]))
    config.copy().a.items_.append(2)
    assert config.a.items_ == [1, 2]


def test_default_box_creates_sections_on_access() -> None:
    config = Config(default_box=True)
    config.tasks.defaults.max_retries = False
    assert config.to_dict() == {"tasks": {"defaults": {"max_retries": False}}}
    with pytest.raises(AttributeError):
        Config().missing  # noqa: B018


def test_a_mapping_stored_in_a_config_reads_back_as_a_config() -> None:
    """Prefect 1.4.1 (verified): its Box-based Config turns an assigned dict into a Config,
    so ``config.section = {...}`` and ``set_temporary_config({"section": {...}})`` read back
    with attribute access."""
    config = Config(flows=Config(checkpointing=False))
    config.mine = {"key": 1, "deeper": {"list": [{"x": 2}]}}
    config["other"] = {"a": 1}
    config.flows.update({"extra": {"b": 2}})
    config.setdefault("fresh", {"c": 3})
    assert config.mine.key == 1 and config.mine.deeper.list[0].x == 2
    assert config.other.a == 1 and config.flows.extra.b == 2 and config.fresh.c == 3
    assert isinstance(Config({"s": {"t": 1}}).s, Config)
    with set_temporary_config({"temporary": {"key": 4}}):
        assert flowcore.config.temporary.key == 4
        with flowcore.context(answer=1):
            assert flowcore.context.config.temporary.key == 4


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, {"max_retries": 0, "retry_delay": None, "timeout": None}),
        (
            {"max_retries": False, "retry_delay": 3, "timeout": False},
            {"max_retries": 0, "retry_delay": datetime.timedelta(seconds=3), "timeout": None},
        ),
        (
            {"max_retries": 2, "retry_delay": None, "timeout": datetime.timedelta(seconds=5)},
            {"max_retries": 2, "retry_delay": None, "timeout": datetime.timedelta(seconds=5)},
        ),
    ],
)
def test_process_task_defaults(given: dict[str, Any], expected: dict[str, Any]) -> None:
    config = Config(tasks=Config(defaults=Config(given))) if given else Config()
    assert process_task_defaults(config) is config
    assert dict(config.tasks.defaults) == expected


def test_load_configuration_with_prefects_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prefect 1.4.1's load_configuration(path, user_config_path, env_var_prefix): the file
    # replaces the defaults, the user file is merged over it, variables only with a prefix.
    defaults = tmp_path / "defaults.toml"
    defaults.write_text('debug = false\n[general]\nx = 1\ny = "${general.x} + 1"\n')
    user = tmp_path / "user.toml"
    user.write_text("[general]\nx = 2\n[user]\nfoo = 'bar'\n")
    monkeypatch.setenv("MYAPP__GENERAL__Z", "7")
    monkeypatch.setenv("MYAPP__CONTEXT__SECRETS__MiXeD", "s")
    monkeypatch.setenv("MYAPP__CONTEXT__Odd_Key", "true")
    config = load_configuration(str(defaults))
    assert config.to_dict() == {"debug": False, "general": {"x": 1, "y": "1 + 1"}}
    config = load_configuration(str(defaults), str(user), env_var_prefix="MYAPP")
    assert config.general.to_dict() == {"x": 2, "y": "2 + 1", "z": 7}
    assert config.user.foo == "bar"
    assert config.context.to_dict() == {"secrets": {"MiXeD": "s"}, "odd_key": True}
    assert string_to_type("fAlSe") is False and string_to_type("-1.5") == -1.5


@pytest.mark.parametrize(
    ("toml", "env"),
    [("[outer.keys]\na = 1\n", {}), ("", {"MYAPP__X__ITEMS__Z": "1"})],
    ids=["file", "environment"],
)
def test_a_key_named_like_a_config_method_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, env: dict[str, str]
) -> None:
    # Prefect 1.4.1 raises ValueError('Invalid config key: "keys"'): config.outer.keys
    # would be the dict method, not the value.
    path = tmp_path / "c.toml"
    path.write_text(toml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match='^Invalid config key: "(keys|items)"'):
        load_configuration(str(path), env_var_prefix="MYAPP")


def test_get_path_and_set_path() -> None:
    config = Config()
    config.set_path("a.b.c", 1)
    assert config.a.b.c == 1 and isinstance(config.a.b, Config)
    assert config.get_path("a.b.c") == 1
    assert config.get_path("a.x.c", "default") == "default"


def test_flowcore_config_is_the_module_config() -> None:
    assert flowcore.config is configuration.config


# -- environment overrides ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("true", True), ("TRUE", True), ("False", False), ("tRuE", True),
        ("3", 3), ("-2", -2), ("0.5", 0.5), ("1e3", 1000.0),
        ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}), ("None", None), ("(1,)", (1,)),
        ("'quoted'", "quoted"), ("0x10", 16),
        ("abc", "abc"), ("s3://bucket/key", "s3://bucket/key"), ("INFO", "INFO"),
        ("[1, 2", "[1, 2"), ("true ", "true "), ("", ""),
    ],
)  # fmt: skip
def test_env_values_are_cast_like_prefect(raw: str, value: Any) -> None:
    cast = cast_env_value(raw)
    assert cast == value and type(cast) is type(value)


def test_env_overrides_sections_and_keys(no_user_file: dict[str, str]) -> None:
    config = load(
        no_user_file,
        FLOWCORE__FLOWS__CHECKPOINTING="true",
        FLOWCORE__TASKS__DEFAULTS__MAX_RETRIES="2",
        FLOWCORE__LOGGING__LEVEL="DEBUG",
        FLOWCORE__LOGGING__LOG_ATTRIBUTES='["my_key"]',
        FLOWCORE__ENGINE__EXECUTOR__DASK__ADDRESS="tcp://127.0.0.1:8786",
        FLOWCORE__CACHING__STORE="/tmp/cache-dir",
        FLOWCORE__DEBUG="1.5",
    )
    assert config.flows.checkpointing is True
    assert config.tasks.defaults.max_retries == 2
    assert config.logging.level == "DEBUG"
    assert config.logging.log_attributes == ["my_key"]
    assert config.engine.executor.dask.address == "tcp://127.0.0.1:8786"
    assert config.caching.store == "/tmp/cache-dir"
    assert config.debug == 1.5
    assert config.flows.run_on_schedule is True  # untouched neighbours stay


def test_env_keys_are_lowercased_and_can_add_sections(no_user_file: dict[str, str]) -> None:
    config = load(no_user_file, FLOWCORE__MY_SECTION__Some_Key="v")
    assert config.my_section.some_key == "v"


def test_context_secrets_keep_their_case(no_user_file: dict[str, str]) -> None:
    config = load(
        no_user_file,
        FLOWCORE__CONTEXT__SECRETS__AWS_CREDENTIALS='{"ACCESS_KEY": "k"}',
        FLOWCORE__CONTEXT__SECRETS__MixedCase="x",
    )
    assert config.context.secrets == {"AWS_CREDENTIALS": {"ACCESS_KEY": "k"}, "MixedCase": "x"}


def test_other_variables_are_ignored(no_user_file: dict[str, str]) -> None:
    config = load(no_user_file, PREFECT__FLOWS__CHECKPOINTING="true", FLOWCOREX__A="1")
    assert config.flows.checkpointing is False
    assert "a" not in config


def test_env_values_expand_variables_and_config_references(no_user_file: dict[str, str]) -> None:
    config = load(
        no_user_file,
        MY_BUCKET="data-bucket",
        FLOWCORE__CACHING__STORE="s3://${MY_BUCKET}/cache",
        FLOWCORE__A__PLAIN="$MY_BUCKET",
        FLOWCORE__A__REF="${flows.run_on_schedule}",
        FLOWCORE__A__PARTIAL="results under ${home_dir}/r",
        FLOWCORE__A__UNKNOWN="$NOT_SET_ANYWHERE_123",
    )
    assert config.caching.store == "s3://data-bucket/cache"
    assert config.a.plain == "data-bucket"
    assert config.a.ref is True  # a whole-value reference keeps the type
    assert config.a.partial == f"results under {os.path.expanduser('~/.flowcore')}/r"
    assert config.a.unknown == "$NOT_SET_ANYWHERE_123"


# -- user config file -----------------------------------------------------------------


def test_user_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[flows]\ncheckpointing = true\n\n"
        "[tasks.defaults]\nmax_retries = 3\nretry_delay = 10\n\n"
        '[logging]\nlevel = "WARNING"\n\n[custom]\nflag = "true"\n'
    )
    config = load_configuration(environ={"FLOWCORE__USER_CONFIG_PATH": str(path)})
    assert config.flows.checkpointing is True
    assert config.flows.run_on_schedule is True
    assert config.tasks.defaults.max_retries == 3
    assert config.tasks.defaults.retry_delay == datetime.timedelta(seconds=10)
    assert config.logging.level == "WARNING"
    assert config.custom.flag is True  # config strings are cast too, as in Prefect 1


def test_environment_wins_over_the_user_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[flows]\ncheckpointing = true\n")
    config = load_configuration(
        environ={"FLOWCORE__USER_CONFIG_PATH": str(path), "FLOWCORE__FLOWS__CHECKPOINTING": "false"}
    )
    assert config.flows.checkpointing is False


def test_user_config_path_expands_variables(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text("[flows]\neager_edge_validation = true\n")
    config = load_configuration(
        environ={"CFG_DIR": str(tmp_path), "FLOWCORE__USER_CONFIG_PATH": "$CFG_DIR/cfg.toml"}
    )
    assert config.flows.eager_edge_validation is True


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[flows\ncheckpointing = \n")
    with pytest.raises(ValueError, match="is not valid TOML") as info:
        load_configuration(environ={"FLOWCORE__USER_CONFIG_PATH": str(path)})
    assert str(path) in str(info.value)


# -- task defaults normalisation ------------------------------------------------------


def test_false_task_defaults_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[tasks.defaults]\nmax_retries = false\nretry_delay = false\ntimeout = false\n")
    config = load_configuration(environ={"FLOWCORE__USER_CONFIG_PATH": str(path)})
    assert config.tasks.defaults.max_retries == 0
    assert config.tasks.defaults.retry_delay is None
    assert config.tasks.defaults.timeout is None


def test_task_defaults_from_env(no_user_file: dict[str, str]) -> None:
    config = load(
        no_user_file,
        FLOWCORE__TASKS__DEFAULTS__MAX_RETRIES="false",
        FLOWCORE__TASKS__DEFAULTS__RETRY_DELAY="5",
        FLOWCORE__TASKS__DEFAULTS__TIMEOUT="30",
    )
    assert config.tasks.defaults.max_retries == 0
    assert config.tasks.defaults.retry_delay == datetime.timedelta(seconds=5)
    assert config.tasks.defaults.timeout == 30


def test_max_retries_none_is_zero(no_user_file: dict[str, str]) -> None:
    assert (
        load(no_user_file, FLOWCORE__TASKS__DEFAULTS__MAX_RETRIES="None").tasks.defaults.max_retries
        == 0
    )


@pytest.mark.parametrize(
    ("settings", "key", "kind"),
    [
        ({"max_retries": "abc"}, "max_retries", "a whole number of retries (0 or more)"),
        ({"max_retries": -1}, "max_retries", "a whole number of retries (0 or more)"),
        ({"max_retries": 2, "retry_delay": "abc"}, "retry_delay", "a number of seconds"),
        ({"timeout": "abc"}, "timeout", "a whole number of seconds (or a timedelta)"),
        ({"timeout": 1.5}, "timeout", "a whole number of seconds (or a timedelta)"),
    ],
)
def test_a_task_default_a_task_cannot_take_names_the_setting(
    settings: dict[str, Any], key: str, kind: str
) -> None:
    temporary = {f"tasks.defaults.{k}": v for k, v in settings.items()}
    with set_temporary_config(temporary), pytest.raises(ValueError) as info:
        task(lambda: None)
    message = str(info.value)
    assert message.startswith(
        f"config tasks.defaults.{key} is {settings[key]!r}, which is not {kind}"
    )
    assert f"FLOWCORE__TASKS__DEFAULTS__{key.upper()}" in message and f"pass {key}=" in message
    with set_temporary_config(temporary):  # a value given to the task is not the config's
        given = task(max_retries=1, retry_delay=datetime.timedelta(seconds=1), timeout=5)(
            lambda: None
        )
    assert (given.max_retries, given.timeout) == (1, 5)


# -- the live config is read at run time ----------------------------------------------


@task
def read_checkpointing() -> tuple[Any, Any]:
    return context.checkpointing, context.config.flows.checkpointing


def test_runs_see_config_changes_made_after_import() -> None:
    with Flow("live config") as flow:
        seen = read_checkpointing()
    assert flow.run().result[seen].result == (False, False)
    with set_temporary_config({"flows.checkpointing": True}):
        assert flow.run().result[seen].result == (True, True)
    assert flow.run().result[seen].result == (False, False)


def test_direct_assignment_to_flowcore_config_reaches_runs() -> None:
    # Prefect 1 copies the config into its context at import, so this had no effect there
    store: dict[str, bytes] = {}

    @task(result=DictResult(store, location="{task_name}.pkl"))
    def produce() -> int:
        return 41

    with Flow("checkpoints") as flow:
        produce()
    flow.run()
    assert store == {}
    flowcore.config.flows.checkpointing = True
    try:
        flow.run()
    finally:
        flowcore.config.flows.checkpointing = False
    assert list(store) == ["produce.pkl"]
    assert DictResult(store).read("produce.pkl").value == 41


def test_tasks_read_default_retries_from_the_live_config() -> None:
    with set_temporary_config(
        {"tasks.defaults.max_retries": 2, "tasks.defaults.retry_delay": datetime.timedelta(0)}
    ):

        @task
        def flaky() -> None:
            return None

    assert flaky.max_retries == 2 and flaky.retry_delay == datetime.timedelta(0)
