"""``set_temporary_config``: set dotted keys for a block, then restore exactly."""

from __future__ import annotations

import pytest

import flowcore
from flowcore import Flow, context, task
from flowcore.configuration import Config
from flowcore.utilities.configuration import set_temporary_config


def test_sets_and_restores_existing_keys() -> None:
    with set_temporary_config({"flows.checkpointing": True, "logging.level": "DEBUG"}) as config:
        assert config is flowcore.config
        assert flowcore.config.flows.checkpointing is True
        assert flowcore.config.logging.level == "DEBUG"
    assert flowcore.config.flows.checkpointing is False
    assert flowcore.config.logging.level == "INFO"


def test_new_keys_and_sections_are_removed_afterwards() -> None:
    with set_temporary_config({"brand.new.key": 1, "top_level": "x"}):
        assert flowcore.config.brand.new.key == 1 and isinstance(flowcore.config.brand, Config)
        assert flowcore.config.top_level == "x"
    assert "brand" not in flowcore.config and "top_level" not in flowcore.config


def test_changes_made_inside_the_block_are_undone() -> None:
    with set_temporary_config({}):
        flowcore.config.flows.run_on_schedule = False
        flowcore.config.tasks.defaults["extra"] = 1
    assert flowcore.config.flows.run_on_schedule is True
    assert "extra" not in flowcore.config.tasks.defaults


def test_sections_keep_their_identity() -> None:
    flows = flowcore.config.flows
    with set_temporary_config({"flows.checkpointing": True}):
        assert flows.checkpointing is True
    assert flowcore.config.flows is flows and flows.checkpointing is False


def test_restores_after_an_exception() -> None:
    with pytest.raises(RuntimeError), set_temporary_config({"flows.checkpointing": True}):
        raise RuntimeError("boom")
    assert flowcore.config.flows.checkpointing is False


def test_nested_blocks() -> None:
    with set_temporary_config({"a.b": 1}):
        with set_temporary_config({"a.b": 2, "a.c": 3}):
            assert (flowcore.config.a.b, flowcore.config.a.c) == (2, 3)
        assert flowcore.config.a.b == 1 and "c" not in flowcore.config.a
    assert "a" not in flowcore.config


def test_visible_in_context_even_inside_a_context_config_override() -> None:
    with context(config={"flows": {"eager_edge_validation": True}}):
        with set_temporary_config({"flows.checkpointing": True}):
            assert context.config.flows.checkpointing is True
            # as in Prefect 1, the block merges the whole live config over the context's
            assert context.config.flows.eager_edge_validation is False
        assert context.config.flows.checkpointing is False
        assert context.config.flows.eager_edge_validation is True


@task
def read_config() -> bool:
    return bool(context.config.flows.checkpointing)


def test_runs_inside_the_block_see_the_values() -> None:
    with Flow("temp config") as flow:
        seen = read_config()
    with set_temporary_config({"flows.checkpointing": True}):
        assert flow.run().result[seen].result is True
    assert flow.run().result[seen].result is False
