"""A flow's structure is stored once (flow_structures), however many runs name it."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timezone

import sqlalchemy as sa

from flowcore.runs import RunStore
from flowcore.runs.events import FlowRunStarted, FlowRunState, structure_digest, structure_json
from flowcore.runs.writer import StructureMemo
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


def _graph(n: int) -> dict[str, object]:
    return {"tasks": [{"slug": f"f{n}-{i}", "name": "t", "mapped": False} for i in range(n)],
            "edges": []}  # fmt: skip


def _started_as_recorded(run_id: str, structure: dict[str, object]) -> FlowRunStarted:
    """A FlowRunStarted as the recorder makes it: the structure as text, with its digest."""
    text = structure_json(structure)
    return started(run_id, structure=text, structure_digest=structure_digest(text))


def test_the_store_end_sends_a_structure_it_sent_before_as_its_digest_alone() -> None:
    sent, kept = (
        StructureMemo(StructureMemo.SENT_STRUCTURES),
        StructureMemo(StructureMemo.KEPT_STRUCTURES),
    )
    state = FlowRunState("r-0", "Running", None, at(0))
    first = [_started_as_recorded("r-0", ETL), state]
    second = [_started_as_recorded("r-1", ETL), _started_as_recorded("r-2", OTHER)]

    assert sent.elide(first) is first  # nothing met before: sent as it is
    elided = sent.elide(second)
    assert elided[0].structure == "" and elided[0].structure_digest == second[0].structure_digest
    assert elided[1] is second[1]  # OTHER is new
    assert second[0].structure == json.dumps(ETL)  # the events given are left as they are

    kept.restore(first)
    kept.restore(elided)
    assert [json.loads(e.structure) for e in elided] == [ETL, OTHER]


def test_the_writer_end_holds_every_structure_it_is_sent_the_digest_of() -> None:
    """Whatever the order flows run in, the writer's end (larger) still holds the text of
    any structure the store's end elides."""
    sent, kept = (
        StructureMemo(StructureMemo.SENT_STRUCTURES),
        StructureMemo(StructureMemo.KEPT_STRUCTURES),
    )
    graphs = [_graph(n) for n in range(1, 61)]
    rng = random.Random(7)
    elided_count = 0
    for run in range(2000):
        # a few flows run often, many now and then
        graph = graphs[rng.randrange(8) if rng.random() < 0.7 else rng.randrange(60)]
        original = _started_as_recorded(f"r-{run}", graph)
        (event,) = sent.elide([original])
        elided_count += event.structure == ""
        kept.restore([event])
        assert json.loads(event.structure) == graph
    assert elided_count > 1000


def test_a_structure_too_large_to_keep_is_sent_whole_every_time() -> None:
    sent = StructureMemo(StructureMemo.SENT_STRUCTURES)
    big = {"tasks": [{"slug": "x" * (StructureMemo.MAX_TEXT + 1)}], "edges": []}
    for run in range(3):
        original = _started_as_recorded(f"big-{run}", big)
        assert sent.elide([original])[0] is original


def test_runs_recorded_through_a_writer_process_keep_their_structures(
    make_store: Callable[..., RunStore],
) -> None:
    """Ten flows, each run several times in turns, through the store's writer process
    (which is sent most structures as digests); between turns, another store on the file
    prunes all runs but one, and with them the structures: every run still reads back its
    own (the writer had kept the texts it was sent)."""
    store = make_store()
    graphs = [_graph(n) for n in range(1, 11)]
    recorded: dict[str, dict[str, object]] = {}
    for turn in range(3):
        for n, graph in enumerate(graphs):
            run_id = f"run-{turn}-{n}"
            store.submit(_started_as_recorded(run_id, graph))
            store.submit(flow_state(run_id, "Success", turn * 100 + n))
            recorded[run_id] = graph
        store.flush()
        if turn == 0:
            assert make_store().prune(retention_days=0, max_runs=1) == 9
    assert store.writer_pid is not None
    runs = {r.run_id: r.structure for r in store.list_runs(limit=1000)}
    assert len(runs) == 21
    assert runs == {run_id: recorded[run_id] for run_id in runs}
