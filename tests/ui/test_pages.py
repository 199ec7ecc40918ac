"""The UI's pages and their JSON twins over a store of real runs (ASGI test client)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from flowcore import Flow, task
from flowcore.ui import runs_pages
from tests.ui import flows
from tests.ui.conftest import Recorded, client_for, recording_into
from tests.ui.flows import XSS_LOG, XSS_MESSAGE, XSS_NAME

RUN_KEYS = {
    "run_id", "flow", "state", "message", "started", "ended", "duration", "finished", "failed",
    "resumable", "host", "pid", "parameters", "source", "resumed_from", "task_counts", "url",
}  # fmt: skip
TASK_KEYS = {
    "index", "task", "slug", "mapped", "state", "message", "run_count", "started", "ended",
    "duration", "result_location", "n_map_states", "children", "done", "total", "url",
}  # fmt: skip


def test_api_runs_lists_newest_first_with_counts(client: TestClient, recorded: Recorded) -> None:
    body = client.get("/api/runs").json()
    assert body["total"] == 6 and body["limit"] == 50 and body["offset"] == 0
    assert [run["run_id"] for run in body["runs"]] == [*reversed(recorded.ok), recorded.demo]
    assert all(set(run) == RUN_KEYS for run in body["runs"])
    demo = body["runs"][-1]
    assert demo["flow"] == "ui demo" and demo["state"] == "Failed" and demo["failed"]
    assert demo["task_counts"] == {"Failed": 1, "Mapped": 1, "Success": 5}  # n, spooky, 3 squares
    assert demo["parameters"] == {"n": "4"} and demo["finished"] and demo["duration"] >= 0
    assert demo["resumable"] is False  # a run made in this process recorded no source file


def test_api_runs_filters_and_pages(client: TestClient, recorded: Recorded) -> None:
    assert [r["run_id"] for r in client.get("/api/runs?flow=ui+demo").json()["runs"]] == [
        recorded.demo
    ]
    failed = client.get("/api/runs?state=failed").json()  # any case, as the CLI
    assert failed["total"] == 1 and failed["runs"][0]["run_id"] == recorded.demo
    nothing = client.get("/api/runs?flow=nope").json()
    assert nothing["colors"]["Failed"] == "#eb0000"
    assert {k: v for k, v in nothing.items() if k != "colors"} == {
        "runs": [], "total": 0, "limit": 50, "offset": 0, "flow": "nope", "state": None,
    }  # fmt: skip
    first = client.get("/api/runs?limit=2").json()
    second = client.get("/api/runs?limit=2&offset=2").json()
    third = client.get("/api/runs?per_page=2&page=3").json()
    ids = [r["run_id"] for page in (first, second, third) for r in page["runs"]]
    assert ids == [*reversed(recorded.ok), recorded.demo] and third["offset"] == 4


def test_runs_page_pager_and_filter_form(client: TestClient, recorded: Recorded) -> None:
    page = client.get("/?per_page=2&page=2")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Runs 3–4 of 6" in page.text and "page 2 of 3" in page.text
    assert "data-runs-live" not in page.text  # every run shown is finished: nothing to refresh
    assert (
        'href="/?page=1&amp;per_page=2"' in page.text
        and 'href="/?page=3&amp;per_page=2"' in page.text
    )
    assert recorded.ok[2][:8] in page.text and recorded.ok[1][:8] in page.text
    assert recorded.ok[4][:8] not in page.text
    beyond = client.get("/?per_page=2&page=999").text
    assert "No page 999: 6 runs, 3 pages." in beyond and "Runs 1997" not in beyond
    assert '<a href="/?page=3&amp;per_page=2">Go to the last page</a>' in beyond
    assert "page 999 of" not in beyond and "older ›" not in beyond
    assert "No page 2: 1 run match, 1 page." in client.get("/?state=Failed&page=2").text
    filtered = client.get("/?state=Failed")
    assert (
        "<option selected>Failed</option>" in filtered.text and recorded.demo[:8] in filtered.text
    )
    assert "No runs match." in client.get("/?flow=nope").text


def test_the_filters_offer_what_can_match_and_say_the_flow_is_exact(client: TestClient) -> None:
    page = client.get("/").text
    form = page[page.index('<select name="state">') : page.index("</select>")]
    offered = re.findall(r"<option(?: selected)?>([^<]*)</option>", form)
    assert offered == list(runs_pages.FLOW_RUN_STATES)  # no State, Finished, Queued, ...
    for state in offered:  # each one is a state a run can be found in
        assert client.get(f"/api/runs?state={state}").status_code == 200
    assert "<option selected>Failed</option>" in client.get("/?state=failed").text
    custom = client.get("/?state=Cancelled").text  # a terminal state handler's choice
    assert "<option selected>Cancelled</option>" in custom
    assert 'placeholder="exact flow name"' in page
    wrong_case = client.get("/?flow=UI+DEMO").text
    assert "No runs match. The flow filter is the flow's exact name, case and all" in wrong_case
    assert "exact name" not in client.get("/?state=Cancelled").text.split("runs-summary")[1]


def test_bad_query_values_are_400(client: TestClient, recorded: Recorded) -> None:
    huge = "99999999999999999999"  # past SQLite's integers
    for query in ("limit=0", "limit=x", "offset=-1", "page=0", "per_page=501", f"offset={huge}", f"page={huge}"):  # fmt: skip
        answer = client.get(f"/api/runs?{query}")
        assert answer.status_code == 400, query
        assert answer.json()["error"].startswith(query.split("=")[0])
    assert client.get(f"/api/runs?page={huge}").json()["error"] == (
        f"page must be from 1 to 1000000000, not {huge}"
    )
    assert client.get(f"/?page={huge}").status_code == 400
    square = client.get(f"/api/runs/{recorded.demo}").json()["tasks"][2]
    for query in (f"map_index={huge}", f"offset={huge}"):
        answer = client.get("/api" + square["url"] + "?" + query)
        assert answer.status_code == 400 and "must be from" in answer.json()["error"], query
    page = client.get("/?page=zero")
    assert (
        page.status_code == 400 and "page must be a whole number, not &#39;zero&#39;" in page.text
    )


def test_api_run_has_tasks_history_logs_and_colors(client: TestClient, recorded: Recorded) -> None:
    run = client.get(f"/api/runs/{recorded.demo}").json()
    assert RUN_KEYS <= set(run) and {
        "history",
        "tasks",
        "logs",
        "resumed_by",
        "colors",
        "resume_jobs",
    } <= set(run)
    n, spooky, square = run["tasks"]
    assert (n["task"], n["state"]) == ("n", "Success") and [t["index"] for t in run["tasks"]] == [
        0,
        1,
        2,
    ]
    assert TASK_KEYS <= set(spooky)
    assert (spooky["task"], spooky["state"], spooky["mapped"], spooky["children"]) == (
        XSS_NAME,
        "Success",
        False,
        {},
    )
    assert spooky["history"][-1]["state"] == "Success"
    assert any(line["message"] == XSS_LOG for line in spooky["logs"])
    assert square["mapped"] and square["state"] == "Mapped" and square["n_map_states"] == 4
    assert (
        square["children"] == {"Success": 3, "Failed": 1} and square["done"] == square["total"] == 4
    )
    assert square["started"] <= square["ended"] and square["duration"] >= 0  # its children's span
    assert square["url"] == f"/runs/{recorded.demo}/tasks/{quote(square['slug'], safe='')}"
    assert run["history"][-1]["state"] == "Failed" and run["history"][-1]["task_slug"] is None
    assert run["colors"]["Failed"] == "#eb0000" and run["resumed_by"] == []
    assert (
        client.get(f"/api/runs/{recorded.demo[:8]}").json()["run_id"] == recorded.demo
    )  # a prefix


def test_run_page_escapes_names_messages_and_log_lines(
    client: TestClient, recorded: Recorded
) -> None:
    page = client.get(f"/runs/{recorded.demo}")
    assert page.status_code == 200
    text = page.text
    for raw in (XSS_NAME, XSS_MESSAGE, XSS_LOG, "<b>"):
        assert raw not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the task table and the graph
    assert "&lt;b&gt;bold&lt;/b&gt;" in text
    assert '<section class="graph" id="graph">\n<svg' in text and 'id="node&#45;2"' in text
    assert "2 of 4 done" not in text and "4 of 4 done" in text  # the map's progress label
    assert text.count("<script") == 1  # ui.js, and nothing else


def test_task_page_lists_children_and_a_childs_history(
    client: TestClient, recorded: Recorded
) -> None:
    run = client.get(f"/api/runs/{recorded.demo}").json()
    square = run["tasks"][2]
    task = client.get("/api" + square["url"]).json()
    assert task["task"]["slug"] == square["slug"] and task["children_total"] == 4
    assert [c["map_index"] for c in task["children"]] == [0, 1, 2, 3]
    failed = client.get("/api" + square["url"] + "?child_state=Failed").json()
    assert [(c["map_index"], c["state"]) for c in failed["children"]] == [(2, "Failed")]
    assert XSS_MESSAGE in failed["children"][0]["message"]
    child = client.get("/api" + square["url"] + "?map_index=2").json()
    assert (
        child["child"]["state"] == "Failed"
        and [t["state"] for t in child["history"]][-1] == "Failed"
    )
    assert child["logs"] and {line["map_index"] for line in child["logs"]} == {2}
    page = client.get(square["url"] + "?map_index=2")
    assert page.status_code == 200 and XSS_MESSAGE not in page.text and "&lt;img src=x" in page.text
    spooky = client.get(run["tasks"][1]["url"])
    assert spooky.status_code == 200 and "&lt;script&gt;alert(1)&lt;/script&gt;" in spooky.text
    assert XSS_NAME not in spooky.text


def test_each_task_counts_all_its_log_lines_and_says_when_some_are_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run page's last 200 lines are the chatty task's: the early task's 5 WARNINGs
    are still counted and shown under its row; a task with more lines than its row shows
    says so and links to its page, which says when it shows only the last ones."""
    with recording_into(tmp_path / "runs.db") as store:
        run_id = flows.record_chatty().flow_run_id
        store.flush()
    with client_for(store) as client:
        early, chatty = client.get(f"/api/runs/{run_id}").json()["tasks"]
        warnings = [line for line in early["logs"] if line["level_name"] == "WARNING"]
        assert [line["message"] for line in warnings] == [f"early line {n}" for n in range(5)]
        assert early["log_count"] == len(early["logs"]) >= 5 and early["log_count_exact"]
        assert chatty["log_count"] >= 300 and len(chatty["logs"]) == runs_pages.ROW_LOG_LINES
        assert chatty["logs"][-1]["message"] == "chatty line 299"
        page = client.get(f"/runs/{run_id}").text
        assert f"(2 states, {early['log_count']} lines)" in page
        assert f"(2 states, {chatty['log_count']} lines, the last 50 shown)" in page
        assert page.count('class="muted lines-cut"') == 1 and f'<a href="{chatty["url"]}">' in page
        monkeypatch.setattr(runs_pages, "TASK_LOG_LINES", 100)
        task = client.get("/api" + chatty["url"]).json()
        assert len(task["logs"]) == 100 and task["logs_cut"]
        assert (
            "Only the last 100 log lines of this task are shown" in client.get(chatty["url"]).text
        )
        assert not client.get("/api" + early["url"]).json()["logs_cut"]
        assert "lines-cut" not in client.get(early["url"]).text


def test_a_task_named_with_a_tab_and_a_newline_has_a_page(tmp_path: Path) -> None:
    name = "tab\tnl\nx"

    @task(name=name)
    def odd() -> int:
        return 1

    with recording_into(tmp_path / "runs.db") as store:
        with Flow("odd names") as flow:
            odd()
        run_id = flow.run().flow_run_id
        store.flush()
    with client_for(store) as client:
        [row] = client.get(f"/api/runs/{run_id}").json()["tasks"]
        assert row["task"] == name and row["url"].endswith("/tasks/tab%09nl%0Ax-1")
        assert client.get("/api" + row["url"]).json()["task"]["slug"] == name + "-1"
        page = client.get(row["url"])
        assert page.status_code == 200 and "<h1>" in page.text


def test_task_page_pages_its_children(client: TestClient, recorded: Recorded) -> None:
    """Children are read a page at a time: ``offset`` skips, ``child_state`` filters, and
    the total counts all that match, not the page."""
    square = client.get(f"/api/runs/{recorded.demo}").json()["tasks"][2]
    later = client.get("/api" + square["url"] + "?offset=2").json()
    assert [c["map_index"] for c in later["children"]] == [2, 3]
    assert (later["children_total"], later["offset"]) == (4, 2)
    succeeded = client.get("/api" + square["url"] + "?child_state=Success&offset=1").json()
    assert [c["map_index"] for c in succeeded["children"]] == [1, 3]
    assert succeeded["children_total"] == 3
    beyond = client.get("/api" + square["url"] + "?child_state=Failed&offset=1").json()
    assert (beyond["children"], beyond["children_total"]) == ([], 1)


def test_graph_svg(client: TestClient, recorded: Recorded) -> None:
    svg = client.get(f"/runs/{recorded.demo}/graph.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert "3 Success, 1 Failed" in svg.text and XSS_NAME not in svg.text
    assert 'xlink:href="#task-2"' in svg.text


def test_without_the_dot_program_the_run_page_says_so_and_shows_the_rest(
    client: TestClient, recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `dot` to be found
    page = client.get(f"/runs/{recorded.demo}")
    assert page.status_code == 200 and "<svg" not in page.text
    assert "No graph: Graphviz&#39;s `dot` program is needed to draw it" in page.text
    assert "apt-get install graphviz" in page.text
    assert 'id="tasks"' in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    svg = client.get(f"/runs/{recorded.demo}/graph.svg")
    assert svg.status_code == 503 and "`dot` program is needed" in svg.text
    assert client.get(f"/api/runs/{recorded.demo}").status_code == 200


def test_unknown_things_are_404(client: TestClient, recorded: Recorded) -> None:
    assert client.get("/api/runs/nope-nope").status_code == 404
    assert client.get("/api/runs/nope-nope").json()["error"].startswith("No run 'nope-nope'")
    page = client.get("/runs/nope-nope")
    assert page.status_code == 404 and "No run &#39;nope-nope&#39;" in page.text
    assert (
        client.get(
            f"/runs/{recorded.demo}/graph.svg".replace(recorded.demo, "nope-nope")
        ).status_code
        == 404
    )
    assert client.get(f"/api/runs/{recorded.demo}/tasks/nope").status_code == 404
    n, _, square = client.get(f"/api/runs/{recorded.demo}").json()["tasks"]
    for url, error in (
        (square["url"] + "?map_index=4", f"{square['slug']!r} of run {recorded.demo} has no child 4 recorded (4 children)"),
        (square["url"] + "?map_index=99999", "has no child 99999"),
        (n["url"] + "?map_index=0", f"{n['slug']!r} of run {recorded.demo} is not mapped: it has no child 0"),
    ):  # fmt: skip
        answer = client.get("/api" + url)
        assert answer.status_code == 404 and error in answer.json()["error"], url
        assert client.get(url).status_code == 404
    assert client.get("/api/resumes/0123456789abcdef").status_code == 404
    assert client.get("/no/such/page").status_code == 404


def test_static_files_and_security_headers(client: TestClient) -> None:
    script = client.get("/static/ui.js")
    assert script.status_code == 200 and "textContent" in script.text
    assert client.get("/static/ui.css").status_code == 200
    for answer in (client.get("/"), client.get("/api/runs"), script):
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
