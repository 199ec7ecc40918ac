"""The UI in a real browser: Debian's headless Chromium driven by selenium through
Debian's chromedriver (``/usr/bin/chromedriver``: selenium downloads nothing), against a
real ``flowcore ui`` process (the installed console script) on 127.0.0.1, on a port it
picks itself (``--port 0``; it prints its URL).

One store, one server and one browser for the module. The store holds runs recorded in
this process (a failed run with a task named ``<script>alert(1)</script>``, a map of
1,000 children, a failed run that ``flowcore resume`` can finish) and, while the live
test runs, a flow run in a subprocess whose children wait for a file the test creates.

Screenshots of each page go to ``$FLOWCORE_UI_SCREENSHOTS`` (docs/images for the docs),
else to a temporary directory of the session: ``ui-runs.png``, ``ui-run.png``,
``ui-run-live.png``, ``ui-xss.png``, ``ui-resume.png``, ``ui-caches.png``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from flowcore import Flow, Parameter, cache_policies, task
from tests.cli.conftest import SCRIPT
from tests.ui import flows
from tests.ui.conftest import eventually, recording_into

# Debian's, unless these name others (an unpacked Chromium: its real binary, not the wrapper)
CHROMIUM = os.environ.get("FLOWCORE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FLOWCORE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 60  # seconds at most for the page to show what the test waits for
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900",
)  # fmt: skip


@dataclass
class World:
    """What the server shows: the store, a cache store, the runs' ids, and where the
    flow files and their subprocesses live."""

    db: Path
    caches: Path
    home: Path
    directory: Path
    demo: str
    big_map: str
    resumable: str


@task(cache_policy=cache_policies.INPUTS)
def _double(x: int) -> int:
    return 2 * x


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("ui-browser")
    with recording_into(directory / "runs.db") as store:
        for n in (1, 2, 3):
            with Flow("doubler") as flow:
                _double(Parameter("n"))
            assert flow.run(n=n, cache_store=str(directory / "caches")).is_successful()
        resumable = flows.record_resumable(directory / "resumable").flow_run_id
        flows.record_ok()
        big_map = flows.record_big_map(1000).flow_run_id
        demo = flows.record_demo().flow_run_id
        store.flush()
    yield World(
        directory / "runs.db",
        directory / "caches",
        directory / "home",
        directory,
        demo,
        big_map,
        resumable,
    )


def _environment(world: World) -> dict[str, str]:
    return {
        **os.environ, "FLOWCORE__HOME_DIR": str(world.home),
        "FLOWCORE__USER_CONFIG_PATH": str(world.home / "no-config.toml"),
        "FLOWCORE__RUNS__STORE": str(world.db),
    }  # fmt: skip


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    """``flowcore ui`` over the world's stores; its URL (``http://127.0.0.1:PORT/``)."""
    if SCRIPT is None:
        pytest.fail("no flowcore console script beside this interpreter: pip install -e '.[test]'")
    log = open(world.directory / "ui.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [SCRIPT, "ui", "--store", str(world.db), "--cache-store", str(world.caches), "--port", "0"],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, env=_environment(world),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (world.directory / "ui.log").read_text()
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            pytest.fail(
                f"{program} is missing: apt-get install chromium chromium-driver (make deps)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("FLOWCORE_UI_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def snap(driver: WebDriver, shots: Path, name: str) -> None:
    """A screenshot of the whole page (up to 2,400 pixels high) as ``shots/name``, taken
    through the DevTools protocol, which can capture beyond the window."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    (shots / name).write_bytes(base64.b64decode(shot["data"]))


def wait_for(driver: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    """``check(driver)`` once it is true, within ``WAIT`` seconds (a live page replaces
    elements as it updates: one gone between finding and reading is looked for again)."""
    waiting = WebDriverWait(
        driver, WAIT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return waiting.until(check, f"the page did not show {what}")


def text_of(driver: WebDriver, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def task_state(driver: WebDriver, name: str) -> str:
    """The state cell of the task table's row for the task called ``name``."""
    for row in driver.find_elements(By.CSS_SELECTOR, "#tasks tr.task"):
        if row.find_element(By.CSS_SELECTOR, "a.task-name").text == name:
            return str(row.find_element(By.CSS_SELECTOR, ".task-state").text)
    raise AssertionError(f"no task {name!r} in the table")


def no_alert(driver: WebDriver) -> bool:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    raise AssertionError(f"the page opened an alert: {alert.text!r}")


def api(server: str, path: str) -> Any:
    with urllib.request.urlopen(server + path.lstrip("/"), timeout=30) as answer:
        return json.load(answer)


# -- the tests -------------------------------------------------------------------------------


def test_runs_page_lists_the_runs(
    browser: WebDriver, server: str, world: World, shots: Path
) -> None:
    browser.get(server)
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    assert len(rows) == 7
    assert [row.get_attribute("data-run-id") for row in rows][:2] == [world.demo, world.big_map]
    states = [row.find_element(By.CSS_SELECTOR, ".state").text for row in rows]
    assert states == ["Failed", "Success", "Success", "Failed", "Success", "Success", "Success"]
    assert "ui big map" in rows[1].text and "1 Mapped" in rows[1].text
    snap(browser, shots, "ui-runs.png")
    browser.find_element(By.CSS_SELECTOR, "select[name=state] option[value='']").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=flow]").send_keys("ui big map")
    browser.find_element(By.CSS_SELECTOR, ".filters button").click()
    wait_for(browser, lambda d: "flow=ui+big+map" in d.current_url, "the filtered list")
    assert [
        r.get_attribute("data-run-id")
        for r in browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    ] == [world.big_map]


def test_run_page_shows_the_graph_and_the_counts_of_a_1000_child_map(
    browser: WebDriver, server: str, world: World, shots: Path
) -> None:
    browser.get(server)
    browser.find_element(By.CSS_SELECTOR, f"tr[data-run-id='{world.big_map}'] a.run-link").click()
    wait_for(browser, lambda d: d.current_url.endswith(f"/runs/{world.big_map}"), "the run page")
    assert text_of(browser, "#run-state") == "Success"
    labels = [
        node.text for node in browser.find_elements(By.CSS_SELECTOR, "#graph svg #node-1 text")
    ]
    assert labels == ["_plus <map>", "1000 Success", "1000 of 1000 done"]
    fill = browser.find_element(By.CSS_SELECTOR, "#graph svg #node-1 polygon").get_attribute("fill")
    assert fill == "#28a745"  # Success's colour
    row = browser.find_element(By.ID, "task-1")
    assert "Mapped" in row.text and "1000 Success" in row.text
    snap(browser, shots, "ui-run.png")
    browser.find_element(By.CSS_SELECTOR, "#graph svg #node-1 a").click()
    assert browser.current_url.endswith("#task-1")


def test_a_malicious_task_name_renders_as_text(
    browser: WebDriver, server: str, world: World, shots: Path
) -> None:
    browser.get(f"{server}runs/{world.demo}")
    assert no_alert(browser)
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#tasks a.task-name")]
    assert names == ["n", flows.XSS_NAME, "_square"]
    graph_text = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#graph svg text")]
    assert flows.XSS_NAME in graph_text
    assert browser.find_elements(By.CSS_SELECTOR, "main script, main img, main b") == []
    browser.execute_script("for (const d of document.querySelectorAll('details')) d.open = true")
    messages = " ".join(cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.message"))
    assert flows.XSS_LOG in messages and flows.XSS_MESSAGE in messages
    snap(browser, shots, "ui-xss.png")
    browser.find_element(By.CSS_SELECTOR, "#task-1 a.task-name").click()
    wait_for(browser, lambda d: "/tasks/" in d.current_url, "the task page")
    assert text_of(browser, "h1").startswith(flows.XSS_NAME) and no_alert(browser)


def test_a_live_run_updates_its_page_and_the_list_then_reloads_once_at_its_end(
    browser: WebDriver, server: str, world: World, shots: Path
) -> None:
    project = world.directory / "live"
    path = flows.write_flow(project, flows.LIVE)
    assert SCRIPT is not None
    process = subprocess.Popen(
        [SCRIPT, "run", f"{path}:flow", "--no-progress"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=_environment(world),
    )  # fmt: skip
    try:
        query = "api/runs?" + urllib.parse.urlencode({"flow": "ui live"})

        def two_done() -> str | None:
            runs = api(server, query)["runs"]
            if not runs:
                return None
            tasks = api(server, f"api/runs/{runs[0]['run_id']}")["tasks"]
            children = next((t["children"] for t in tasks if t["task"] == "work"), {})
            return str(runs[0]["run_id"]) if children.get("Success", 0) >= 2 else None

        run_id = eventually(two_done, what="two children of the live run")
        browser.get(f"{server}runs/{run_id}")
        wait_for(
            browser,
            lambda d: text_of(d, "#run-state") in ("Pending", "Running"),
            "the run in progress",
        )
        wait_for(browser, lambda d: "2 Success" in task_state(d, "work"), "2 successful children")
        browser.execute_script("window.flowcoreTestMarker = 'same page'")
        snap(browser, shots, "ui-run-live.png")
        run_page = browser.current_window_handle
        browser.switch_to.new_window("tab")  # the runs list, in a tab of its own
        browser.get(server)
        row_state = f"tr[data-run-id='{run_id}'] .state"
        wait_for(
            browser,
            lambda d: text_of(d, row_state) in ("Pending", "Running"),
            "the run in progress in the list",
        )
        browser.execute_script("window.flowcoreTestMarker = 'same list'")
        (project / "release").touch()
        wait_for(
            browser, lambda d: text_of(d, row_state) == "Success", "the run's Success in the list"
        )
        assert (
            browser.execute_script("return window.flowcoreTestMarker") == "same list"
        )  # not reloaded
        browser.close()
        browser.switch_to.window(run_page)
        wait_for(  # updated in place while live, then reloaded once, at the end:
            browser,
            lambda d: d.execute_script("return window.flowcoreTestMarker") is None,
            "the run page reloaded once the run finished",
        )
        wait_for(browser, lambda d: text_of(d, "#run-state") == "Success", "the run's Success")
        assert "4 Success" in task_state(browser, "work") and "4 Success" in text_of(
            browser, "#graph"
        )
        assert browser.find_element(By.TAG_NAME, "main").get_attribute("data-live") is None
        history = browser.find_element(
            By.XPATH, "//h2[.='Flow run history']/following-sibling::table[1]"
        )
        assert [badge.text for badge in history.find_elements(By.CSS_SELECTOR, ".state")][
            -1
        ] == "Success"
        assert text_of(browser, "#run-ended") != "-"
        browser.execute_script("window.flowcoreTestMarker = 'final page'")
        eventually(lambda: api(server, f"api/runs/{run_id}")["finished"], what="the run's end")
        assert (
            browser.execute_script("return window.flowcoreTestMarker") == "final page"
        )  # the final page is not live: it does not reload again
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_resume_button_resumes_a_failed_run(
    browser: WebDriver, server: str, world: World, shots: Path
) -> None:
    browser.get(f"{server}runs/{world.resumable}")
    assert text_of(browser, "#run-state") == "Failed"
    assert "1 Failed" in task_state(browser, "square")
    browser.find_element(By.ID, "resume-button").click()
    wait_for(browser, lambda d: "/resumes/" in d.current_url, "the resume job")
    link = wait_for(
        browser,
        lambda d: (
            d.find_element(By.ID, "new-run-link").is_displayed()
            and d.find_element(By.ID, "new-run-link")
        ),
        "the new run's link",
    )
    wait_for(browser, lambda d: "succeeded" in text_of(d, "#job-status"), "the job's success")
    snap(browser, shots, "ui-resume.png")
    new_run = link.text
    link.click()
    wait_for(browser, lambda d: d.current_url.endswith(f"/runs/{new_run}"), "the new run's page")
    assert text_of(browser, "#run-state") == "Success"
    assert "5 Success" in task_state(browser, "square")
    assert browser.find_element(By.ID, "resumed-from").text == world.resumable
    browser.find_element(By.ID, "resumed-from").click()
    wait_for(
        browser,
        lambda d: d.current_url.endswith(f"/runs/{world.resumable}"),
        "the resumed run's page",
    )
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.resumed-by")] == [new_run]


def test_a_cache_entry_is_deleted(
    browser: WebDriver, server: str, world: World, shots: Path
) -> None:
    browser.get(server + "caches")
    rows = browser.find_elements(By.CSS_SELECTOR, "#caches tbody tr.entry")
    assert len(rows) == 3 and all("_double" in row.text and "doubler" in row.text for row in rows)
    snap(browser, shots, "ui-caches.png")
    rows[0].find_element(By.CSS_SELECTOR, ".delete-button").click()
    wait_for(browser, lambda d: "notice=" in d.current_url, "the page after the delete")
    assert text_of(browser, "#notice").startswith("Deleted the entry of '_double'")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#caches tbody tr.entry")) == 2
    assert len(api(server, "api/caches")["entries"]) == 2
    shutil.rmtree(world.directory / "live", ignore_errors=True)


LONG_FLOW = "very_long_generated_flow_name_" * 8
LONG_TASK = "task_" + "x" * 150


@task(name=LONG_TASK, cache_policy=cache_policies.INPUTS)
def _long(x: str) -> str:
    return x * 2


def test_long_names_wrap_within_the_window(
    browser: WebDriver, server: str, world: World, shots: Path
) -> None:
    """Names, slugs, keys and locations with no place to break wrap: no page is wider
    than the 1,280-pixel window."""
    with recording_into(world.db) as store:
        with Flow(LONG_FLOW) as flow:
            _long(Parameter("x", default="y" * 300))
        state = flow.run(cache_store=str(world.caches))
        assert state is not None and state.is_successful()
        store.flush()
    run_id = api(server, f"api/runs?flow={urllib.parse.quote(LONG_FLOW)}")["runs"][0]["run_id"]
    task_url = api(server, f"api/runs/{run_id}")["tasks"][1]["url"]
    for name, path in (
        ("runs", ""), ("run", f"runs/{run_id}"), ("task", task_url.lstrip("/")), ("caches", "caches"),
    ):  # fmt: skip
        browser.get(server + path)
        assert LONG_TASK[:40] in browser.find_element(By.TAG_NAME, "main").text or name == "runs"
        widths = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        snap(browser, shots, f"long-{name}.png")
        assert widths[0] <= widths[1], f"the {name} page is {widths[0]} px wide in {widths[1]}"


def test_the_pages_logged_no_errors(browser: WebDriver, server: str, world: World) -> None:
    """Nothing the tests above opened broke a script or the content security policy
    (the browser's console since the first page)."""
    browser.get(f"{server}runs/{world.demo}")
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
