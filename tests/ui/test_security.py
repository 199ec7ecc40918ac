"""Who may use the UI: the host check, the token, cross-site POSTs (ASGI test client)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.ui.conftest import Recorded, client_for, csrf_of

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(recorded: Recorded) -> TestClient:
    return client_for(recorded.store, token=TOKEN)


def test_without_the_token_every_request_is_401(guarded: TestClient, recorded: Recorded) -> None:
    page = guarded.get("/")
    assert page.status_code == 401 and "needs its token" in page.text
    api = guarded.get(f"/api/runs/{recorded.demo}")
    assert api.status_code == 401 and "Authorization: Bearer" in api.json()["error"]
    assert guarded.get("/static/ui.js").status_code == 401
    assert guarded.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get("/?token=wrong").status_code == 401
    assert (
        guarded.get("/", headers={"Cookie": f"flowcore_ui_session={TOKEN}"}).status_code == 401
    )  # not the token itself


def test_a_bearer_header_carries_the_token(guarded: TestClient) -> None:
    answer = guarded.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["total"] == 6


def test_the_token_url_sets_a_cookie_and_drops_the_token(guarded: TestClient) -> None:
    login = guarded.get(f"/?flow=ui+ok&token={TOKEN}")
    assert login.status_code == 303 and login.headers["location"] == "/?flow=ui+ok"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("flowcore_ui_session=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = guarded.get("/?flow=ui+ok")  # the client keeps the cookie, as a browser does
    assert page.status_code == 200 and "Runs 1–5 of 5" in page.text
    assert guarded.get("/api/runs").status_code == 200


def test_the_token_url_redirects_within_the_ui(recorded: Recorded) -> None:
    fresh = client_for(recorded.store, token=TOKEN)
    elsewhere = fresh.get(f"http://127.0.0.1//evil.example/?token={TOKEN}")
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/evil.example/"


def test_a_loopback_ui_answers_loopback_host_names_only(client: TestClient) -> None:
    for host in ("127.0.0.1:4200", "localhost:4200", "[::1]:4200", "127.0.0.1"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:4200", "192.168.1.10:4200", ""):
        refused = client.get("/api/runs", headers={"Host": host})
        assert refused.status_code == 400 and "127.0.0.1" in refused.text, host


def test_a_ui_with_a_token_on_another_address_answers_any_host(recorded: Recorded) -> None:
    remote = client_for(recorded.store, token=TOKEN, loopback_only=False)
    answer = remote.get(
        "/api/runs", headers={"Host": "ui.example:4200", "Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 200


def test_posts_need_the_csrf_token(client: TestClient) -> None:
    refused = client.post("/caches/gc", data={"max_entries": "5"})
    assert refused.status_code == 403 and "reload the page" in refused.text
    assert client.post("/caches/gc", data={"csrf_token": "forged"}).status_code == 403
    csrf = csrf_of(client)
    assert client.post("/caches/gc", data={"csrf_token": csrf}).status_code in (303, 409)
    assert client.post("/caches/gc", headers={"X-CSRF-Token": csrf}).status_code in (303, 409)


def test_cross_site_posts_are_refused(client: TestClient) -> None:
    csrf = csrf_of(client)
    other = client.post(
        "/caches/gc", data={"csrf_token": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert other.status_code == 403 and "Origin" in other.text
    site = client.post(
        "/caches/gc", data={"csrf_token": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert site.status_code == 403
    same = client.post(
        "/caches/gc", data={"csrf_token": csrf},
        headers={"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"},
    )  # fmt: skip
    assert same.status_code in (303, 409)


def test_only_get_and_post(client: TestClient, recorded: Recorded) -> None:
    assert client.put("/caches/gc").status_code == 405
    assert client.delete(f"/api/runs/{recorded.demo}").status_code == 405
    assert client.get("/caches/gc").status_code == 405
    assert client.post(f"/api/runs/{recorded.demo}").status_code == 405


def test_forms_must_be_urlencoded_and_small(client: TestClient) -> None:
    csrf = csrf_of(client)
    as_json = client.post("/caches/gc", json={"csrf_token": csrf})
    assert as_json.status_code == 415
    huge = client.post("/caches/gc", data={"csrf_token": csrf, "pad": "x" * 70_000})
    assert huge.status_code == 413


def test_a_bearer_request_needs_no_csrf_token(recorded: Recorded) -> None:
    remote = client_for(recorded.store, token=TOKEN)
    answer = remote.post(
        f"/runs/{recorded.ok[0]}/resume", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 409  # past the CSRF check: a successful run is not resumed
    cookie_only = client_for(recorded.store, token=TOKEN)
    cookie_only.get(f"/?token={TOKEN}")
    assert cookie_only.post(f"/runs/{recorded.ok[0]}/resume").status_code == 403


def test_resume_refuses_runs_that_did_not_fail_or_have_no_source(
    client: TestClient, recorded: Recorded
) -> None:
    csrf = csrf_of(client)
    succeeded = client.post(f"/runs/{recorded.ok[0]}/resume", data={"csrf_token": csrf})
    assert (
        succeeded.status_code == 409 and "only a failed, crashed or cancelled run" in succeeded.text
    )
    sourceless = client.post(f"/runs/{recorded.demo}/resume", data={"csrf_token": csrf})
    assert sourceless.status_code == 409 and "flow.run(resume=" in sourceless.text
    assert client.post("/runs/nope-nope/resume", data={"csrf_token": csrf}).status_code == 404
    page = client.get(f"/runs/{recorded.demo}").text
    assert 'id="resume-form"' not in page and "flow.run(resume=" in page
