"""The UI over a run store on a real PostgreSQL server (Debian's, started by the suite)."""

from __future__ import annotations

from tests.servers import postgresql_server, postgresql_url  # noqa: F401
from tests.ui import flows
from tests.ui.conftest import client_for, recording_into


def test_runs_and_a_run_from_postgresql(postgresql_url: str) -> None:  # noqa: F811
    with recording_into(postgresql_url) as store:
        demo = flows.record_demo().flow_run_id
        ok = flows.record_ok().flow_run_id
        store.flush()
    client = client_for(store)
    listed = client.get("/api/runs").json()
    assert [r["run_id"] for r in listed["runs"]] == [ok, demo] and listed["total"] == 2
    assert client.get("/api/runs?state=Failed").json()["runs"][0]["run_id"] == demo
    run = client.get(f"/api/runs/{demo[:8]}").json()
    assert {t["task"]: t["children"] for t in run["tasks"]}["_square"] == {
        "Success": 3,
        "Failed": 1,
    }
    page = client.get(f"/runs/{demo}")
    assert page.status_code == 200 and "postgresql+psycopg://" in page.text
    assert flows.XSS_NAME not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
