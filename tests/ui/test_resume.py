"""The Resume button over HTTP: a real ``flowcore resume`` subprocess resumes a failed run,
the job page links to the new run, and the two runs link to each other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.ui.conftest import client_for, csrf_of, eventually, recording_into
from tests.ui.flows import record_cancelled, record_resumable


@pytest.fixture
def failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str]]:
    monkeypatch.setenv("FLOWCORE__HOME_DIR", str(tmp_path / "home"))  # the subprocess's
    with recording_into(tmp_path / "runs.db") as store:
        run_id = record_resumable(tmp_path / "project").flow_run_id
        store.flush()
        yield client_for(store), run_id


def test_resume_runs_flowcore_resume_and_links_the_runs(failed: tuple[TestClient, str]) -> None:
    client, run_id = failed
    page = client.get(f"/runs/{run_id}").text
    assert 'id="resume-form"' in page and 'id="resume-form" hidden' not in page
    job_url, job = _resumed(client, run_id)
    new = client.get(f"/api/runs/{job['new_run_id']}").json()
    assert new["state"] == "Success" and new["resumed_from"] == run_id
    assert {t["task"]: t["children"] for t in new["tasks"]}["square"] == {"Success": 5}
    assert client.get(f"/api/runs/{run_id}").json()["resumed_by"] == [
        {"run_id": new["run_id"], "state": "Success", "url": f"/runs/{new['run_id']}"}
    ]
    job_page = client.get(job_url).text
    assert f'href="/runs/{new["run_id"]}"' in job_page and "the resumed run succeeded" in job_page
    old_page = client.get(f"/runs/{run_id}").text
    assert f'class="resumed-by" href="/runs/{new["run_id"]}"' in old_page
    assert f'id="resumed-from" href="/runs/{run_id}"' in client.get(f"/runs/{new['run_id']}").text


def test_a_cancelled_run_is_resumed_like_a_failed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped by Ctrl-C ends Cancelled, and is resumed as a failed run is
    (runs.md); its page offers Resume, as flowcore resume takes it."""
    monkeypatch.setenv("FLOWCORE__HOME_DIR", str(tmp_path / "home"))
    with recording_into(tmp_path / "runs.db") as store:
        record_cancelled(tmp_path / "project")
        store.flush()
        client = client_for(store)
        [run] = client.get("/api/runs").json()["runs"]
        assert run["state"] == "Cancelled" and run["resumable"]
        page = client.get(f"/runs/{run['run_id']}").text
        assert 'id="resume-form"' in page and 'id="resume-form" hidden' not in page
        _, job = _resumed(client, run["run_id"])
        new = client.get(f"/api/runs/{job['new_run_id']}").json()
        assert new["state"] == "Success" and new["resumed_from"] == run["run_id"]


def _resumed(client: TestClient, run_id: str) -> tuple[str, dict[str, Any]]:
    """Press Resume on ``run_id``: the job's page and, once it has ended well, the job."""
    started = client.post(f"/runs/{run_id}/resume", data={"csrf_token": csrf_of(client)})
    assert started.status_code == 303 and started.headers["location"].startswith("/resumes/")
    job_url = started.headers["location"]

    def finished() -> dict[str, Any] | None:
        job = client.get("/api" + job_url).json()
        done = job["status"] == "finished" and (job["new_run_id"] or job["returncode"] != 0)
        return job if done else None

    job = eventually(finished, what="the resume job")
    assert job["run_id"] == run_id and job["returncode"] == 0 and job["succeeded"], job["output"]
    return job_url, job
