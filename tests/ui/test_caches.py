"""The caches page over a cache store filled by real flow runs: entries, delete, gc."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flowcore import Flow, Parameter, cache_policies, task
from flowcore.engine import cache_validators
from tests.ui.conftest import Recorded, client_for, csrf_of

ENTRY_KEYS = {
    "key", "record_id", "task", "flow", "flow_run_id", "created", "expires", "expired",
    "value_location", "size", "location", "problem", "age", "expires_in", "value_elsewhere",
}  # fmt: skip


@task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
def load(n: int) -> bytes:
    return b"x" * (n * 1000)


@task(cache_policy=cache_policies.INPUTS, name="<i>total</i>")
def total(data: bytes) -> int:
    return len(data)


@pytest.fixture
def caches(recorded: Recorded, tmp_path: Path) -> TestClient:
    """The UI over a cache store with 4 entries: ``load`` (n=1, 2) by flow etl, and
    ``<i>total</i>`` of each."""
    store = str(tmp_path / "caches")
    for n in (1, 2):
        with Flow("etl") as flow:
            total(load(Parameter("n")))
        state = flow.run(n=n, cache_store=store)
        assert state is not None and state.is_successful()
    return client_for(recorded.store, cache_store=store)


def test_api_caches_lists_entries_with_age_size_and_expiry(caches: TestClient) -> None:
    body = caches.get("/api/caches").json()
    assert body["problem"] is None and body["store"].endswith("caches")
    entries = body["entries"]
    assert [(e["task"], e["flow"]) for e in entries] == [("<i>total</i>", "etl")] * 2 + [
        ("load", "etl")
    ] * 2
    assert all(set(e) == ENTRY_KEYS for e in entries)
    loads = [e for e in entries if e["task"] == "load"]
    assert sorted(e["size"] for e in loads)[1] > 2000 and all(0 <= e["age"] < 600 for e in loads)
    assert all(3500 < e["expires_in"] <= 3600 and not e["expired"] for e in loads)
    assert body["total_bytes"] == sum(e["size"] or 0 for e in entries)
    assert [e["task"] for e in caches.get("/api/caches?task=load").json()["entries"]] == [
        "load",
        "load",
    ]
    assert caches.get("/api/caches?flow=other").json()["entries"] == []


def test_caches_page_escapes_and_shows_age_size_expiry(caches: TestClient) -> None:
    page = caches.get("/caches")
    assert page.status_code == 200
    assert "<i>total</i>" not in page.text and "&lt;i&gt;total&lt;/i&gt;" in page.text
    assert "0s ago" in page.text and "in 59m" in page.text and "2.0 KB" in page.text
    assert page.text.count('class="delete-button"') == 4


def test_delete_one_entry(caches: TestClient) -> None:
    entry = caches.get("/api/caches?task=load").json()["entries"][0]
    csrf = csrf_of(caches)
    done = caches.post(
        "/caches/delete",
        data={"csrf_token": csrf, "key": entry["key"], "record_id": entry["record_id"]},
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/caches?notice=")
    assert (
        "Deleted the entry of &#39;load&#39; with key load"
        in caches.get(done.headers["location"]).text
    )
    left = caches.get("/api/caches").json()["entries"]
    assert len(left) == 3 and entry["record_id"] not in {
        e["record_id"] for e in left if e["task"] == "load"
    }
    again = caches.post(
        "/caches/delete",
        data={"csrf_token": csrf, "key": entry["key"], "record_id": entry["record_id"]},
    )
    assert again.status_code == 404
    assert caches.post("/caches/delete", data={"csrf_token": csrf}).status_code == 400
    assert (
        caches.get("/caches?notice=made-up").status_code == 200
    )  # an unknown notice shows nothing


def test_gc_with_limits(caches: TestClient) -> None:
    csrf = csrf_of(caches)
    assert (
        caches.post("/caches/gc", data={"csrf_token": csrf, "max_age": "soon"}).status_code == 400
    )
    assert (
        caches.post("/caches/gc", data={"csrf_token": csrf, "max_entries": "-1"}).status_code == 400
    )
    kept = caches.post("/caches/gc", data={"csrf_token": csrf, "max_age": "7d"})
    assert "removed 0 entries" in caches.get(kept.headers["location"]).text
    done = caches.post(
        "/caches/gc", data={"csrf_token": csrf, "max_entries": "1", "max_size": "1GB"}
    )
    assert done.status_code == 303
    assert "Garbage collection removed 3 entries" in caches.get(done.headers["location"]).text
    assert len(caches.get("/api/caches").json()["entries"]) == 1


def test_a_missing_store_is_said_on_the_page(recorded: Recorded, tmp_path: Path) -> None:
    client = client_for(recorded.store, cache_store=str(tmp_path / "nowhere"))
    body = client.get("/api/caches").json()
    assert body["entries"] == [] and "no such directory" in body["problem"]
    csrf = csrf_of(client)
    assert client.post("/caches/gc", data={"csrf_token": csrf}).status_code == 409
    memory = client_for(recorded.store, cache_store="memory").get("/api/caches").json()
    assert "lives only in the process" in memory["problem"]


def test_entries_with_values_kept_apart_are_not_removed_without_their_values(
    recorded: Recorded, tmp_path: Path
) -> None:
    """Over the records of a policy's key_storage alone, delete and gc refuse as
    ``flowcore cache rm`` and ``gc`` do (removing a record alone would leave its value for
    good), with a notice naming the command that removes both; the page says why."""
    keys, values = tmp_path / "keys", tmp_path / "values"

    @task(cache_policy=cache_policies.INPUTS.configure(key_storage=str(keys)))
    def fetch(city: str) -> str:
        return city.upper()

    for city in ("oslo", "lima"):
        with Flow("keyed") as flow:
            fetch(Parameter("city"))
        assert flow.run(city=city, cache_store=str(values)).is_successful()
    client = client_for(recorded.store, cache_store=str(keys))
    entries = client.get("/api/caches").json()["entries"]
    assert [e["value_elsewhere"] for e in entries] == [str(values)] * 2
    page = client.get("/caches").text
    assert "keep their values apart from their records (key_storage)" in page
    assert f"--values {values}" in page and 'class="delete-button"' not in page
    csrf = csrf_of(client)
    deleted = client.post(
        "/caches/delete",
        data={"csrf_token": csrf, "key": entries[0]["key"], "record_id": entries[0]["record_id"]},
    )
    assert deleted.status_code == 303
    notice = client.get(deleted.headers["location"]).text
    assert "nothing was removed" in notice and f"flowcore cache rm {entries[0]['key']}" in notice
    assert f"--store {keys} --values {values}" in notice
    collected = client.post("/caches/gc", data={"csrf_token": csrf, "max_entries": "0"})
    assert collected.status_code == 303
    notice = client.get(collected.headers["location"]).text
    assert "2 cache entries keep their values" in notice
    assert f"flowcore cache gc --store {keys} --values {values}" in notice
    assert len(list(keys.rglob("*.json"))) == 2 and len(list(values.rglob("*.value"))) == 2


def test_a_damaged_record_is_shown_as_damaged(caches: TestClient) -> None:
    entry = caches.get("/api/caches?task=load").json()["entries"][0]
    Path(entry["location"]).write_text("{not json")
    [damaged] = [e for e in caches.get("/api/caches").json()["entries"] if e["problem"]]
    assert damaged["task"] == "" and damaged["expired"] is True
    page = caches.get("/caches").text
    assert 'href="/caches?task="' not in page
    assert "1 entry is damaged and never used" in page
    assert f"{entry['location']} is not JSON" in page and ">damaged</td>" in page


def test_the_count_of_entries_is_singular_for_one(caches: TestClient) -> None:
    assert "4 entries," in caches.get("/caches").text
    csrf = csrf_of(caches)
    assert caches.post("/caches/gc", data={"csrf_token": csrf, "max_entries": "1"}).is_redirect
    assert ": 1 entry," in caches.get("/caches").text
