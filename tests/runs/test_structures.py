"""A flow's structure is stored once (flow_structures), however many runs name it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone

import sqlalchemy as sa

from flowcore.runs import RunStore
from tests.runs.conftest import (
    at,
    at_revision,
    flow_state,
    insert_old_run,
    revision_of,
    started,
)

ETL = {
    "tasks": [{"slug": f"t-{i}", "name": "t", "mapped": False} for i in range(50)],
    "edges": [{"upstream": f"t-{i}", "downstream": f"t-{i + 1}"} for i in range(49)],
}
OTHER = {"tasks": [{"slug": "x-1", "name": "x", "mapped": True}], "edges": []}


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_runs_of_one_flow_share_one_stored_structure(url: str, store: RunStore) -> None:
    for n in range(3):
        store.submit(started(f"etl-{n}", structure=ETL, time=at(n)))
    store.submit(started("other-1", flow="other", structure=OTHER, time=at(5)))
    store.flush()

    assert len(_rows(url, "SELECT digest FROM flow_structures")) == 2
    assert {r.run_id: r.structure for r in store.list_runs()} == {
        "etl-0": ETL, "etl-1": ETL, "etl-2": ETL, "other-1": OTHER,
    }  # fmt: skip
    (etl_run,) = [r for r in store.list_runs() if r.run_id == "etl-1"]
    etl_run.structure["tasks"].clear()  # each record has its own copy
    assert store.get_run("etl-2").structure == ETL  # type: ignore[union-attr]


def test_pruning_deletes_the_structures_no_run_names(url: str, store: RunStore) -> None:
    store.submit(started("old", flow="other", structure=OTHER, time=at(-3600)))
    store.submit(flow_state("old", "Success", -3500))
    for n in range(2):
        store.submit(started(f"etl-{n}", structure=ETL, time=at(n)))
        store.submit(flow_state(f"etl-{n}", "Success", n + 1))
    store.flush()
    assert len(_rows(url, "SELECT digest FROM flow_structures")) == 2

    assert store.prune(retention_days=0, max_runs=1) == 2  # "old" and "etl-0"

    assert [r.run_id for r in store.list_runs()] == ["etl-1"]
    assert store.get_run("etl-1").structure == ETL  # type: ignore[union-attr]
    assert len(_rows(url, "SELECT digest FROM flow_structures")) == 1


def test_a_run_recorded_before_structures_were_stored_apart_keeps_its_own(
    url: str, make_store: Callable[..., RunStore]
) -> None:
    when = datetime.now(timezone.utc).replace(microsecond=0)
    with at_revision(url, "0003_run_journal") as conn:
        insert_old_run(conn, url, when, structure=json.dumps(ETL))

    store = make_store()
    assert store.get_run("old-run").structure == ETL  # type: ignore[union-attr]
    assert revision_of(url) == "0004_flow_structures"
    store.submit(started("new-run", structure=ETL, time=at(10)))
    store.flush()
    assert {r.run_id: r.structure for r in store.list_runs()} == {"old-run": ETL, "new-run": ETL}
