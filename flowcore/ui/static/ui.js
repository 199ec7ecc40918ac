// flowcore ui: live updates of the runs list, a run page and a resume job, by polling the JSON API.
// Text from runs (names, messages, log lines) is only ever written with textContent.
(function () {
  "use strict";

  const POLL_MS = 1000;
  const main = document.querySelector("main");
  if (!main) return;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function when(iso) {
    return iso ? iso.slice(0, 19).replace("T", " ") : "-";
  }

  function seconds(value) {
    if (value === null || value === undefined) return "-";
    if (value < 1) return Math.round(value * 1000) + "ms";
    if (value < 60) return value.toFixed(1) + "s";
    const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    let rest = Math.floor(value);
    const parts = [];
    for (const [unit, size] of units) {
      const count = Math.floor(rest / size);
      rest -= count * size;
      if (count || parts.length) parts.push([count, unit]);
      if (parts.length === 2) break;
    }
    return parts.filter(([count]) => count).map(([count, unit]) => count + unit).join("") || "0s";
  }

  function badge(state, colors) {
    const node = el("span", "state", state);
    node.style.setProperty("--state-color", colors[state] || "#d0d0d0");
    return node;
  }

  function counts(children, colors) {
    const node = el("span", "counts");
    Object.entries(children).sort((a, b) => b[1] - a[1]).forEach(([state, n]) => {
      const chip = el("span", "count", n + " " + state);
      chip.title = state;
      chip.style.setProperty("--state-color", colors[state] || "#d0d0d0");
      node.appendChild(chip);
    });
    return node;
  }

  function bar(task, colors) {
    const node = el("span", "bar");
    node.title = task.done + " of " + task.total + " done";
    Object.entries(task.children).sort((a, b) => b[1] - a[1]).forEach(([state, n]) => {
      const part = el("span");
      part.style.width = (100 * n / task.total).toFixed(2) + "%";
      part.style.background = colors[state] || "#d0d0d0";
      node.appendChild(part);
    });
    return node;
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  function updateTask(task, colors) {
    const row = document.getElementById("task-" + task.index);
    if (!row) return;
    const cell = row.querySelector(".task-state");
    cell.replaceChildren(badge(task.state, colors));
    if (Object.keys(task.children).length) {
      cell.append(" ", counts(task.children, colors), " ", bar(task, colors));
    }
    row.querySelector(".task-runs").textContent = task.run_count;
    row.querySelector(".task-duration").textContent = seconds(task.duration);
    row.querySelector(".task-message").textContent = task.message || "";
    row.querySelector(".task-result").replaceChildren(el("code", null, task.result_location || ""));
  }

  function updateLogs(lines) {
    const table = document.getElementById("run-logs");
    if (!table) return;
    const body = table.tBodies[0];
    const rows = lines.map((line) => {
      const row = el("tr", "level-" + line.level_name.toLowerCase());
      const where = (line.task_slug || "") + (line.map_index >= 0 ? "[" + line.map_index + "]" : "");
      row.append(el("td", "nowrap", when(line.time)), el("td", null, line.level_name), el("td", null, where), el("td", "message", line.message));
      return row;
    });
    if (!rows.length) {
      const empty = el("tr", "empty");
      const cell = el("td", null, "No log lines.");
      cell.colSpan = 4;
      empty.appendChild(cell);
      rows.push(empty);
    }
    body.replaceChildren(...rows);
  }

  async function updateGraph(runId) {
    const response = await fetch("/runs/" + encodeURIComponent(runId) + "/graph.svg", { credentials: "same-origin" });
    if (!response.ok) return;
    const parsed = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
    const svg = parsed.documentElement;
    if (svg.nodeName !== "svg" || parsed.querySelector("script, foreignObject")) return;
    const holder = document.getElementById("graph");
    if (holder) holder.replaceChildren(document.importNode(svg, true));
  }

  async function pollRun(runId) {
    let drawn = null;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      let run;
      try {
        const response = await fetch("/api/runs/" + encodeURIComponent(runId), { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.status === 404 || response.status === 401) return; // pruned, or logged out
        if (!response.ok) continue;
        run = await response.json();
      } catch (error) {
        continue; // the UI restarted, or the network blinked: try again
      }
      const colors = run.colors || {};
      document.getElementById("run-state").replaceWith(Object.assign(badge(run.state, colors), { id: "run-state" }));
      setText("run-message", run.message || "");
      setText("run-ended", when(run.ended));
      setText("run-duration", seconds(run.duration));
      const counter = document.getElementById("run-counts");
      if (counter) counter.replaceWith(Object.assign(counts(run.task_counts, colors), { id: "run-counts" }));
      run.tasks.forEach((task) => updateTask(task, colors));
      updateLogs(run.logs);
      const shape = JSON.stringify(run.tasks.map((task) => [task.state, task.children]));
      if (shape !== drawn) {
        drawn = shape;
        await updateGraph(runId);
      }
      const resume = document.getElementById("resume-form");
      if (resume) resume.hidden = !run.resumable;
      main.dataset.state = run.state;
      if (run.finished) {
        // once: what is only drawn by the server (the flow run's history, each task's
        // history and log lines) is final now; the new page is not live, so it stays
        delete main.dataset.live;
        location.reload();
        return;
      }
    }
  }

  async function pollJob(jobId) {
    let after = 0; // polls since the job finished, waiting for its new run to be recorded
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      let job;
      try {
        const response = await fetch("/api/resumes/" + encodeURIComponent(jobId), { credentials: "same-origin" });
        if (response.status === 404 || response.status === 401) return; // the UI restarted
        if (!response.ok) continue;
        job = await response.json();
      } catch (error) {
        continue;
      }
      setText("job-output", job.output);
      const status = document.getElementById("job-status");
      if (job.status === "running") {
        status.textContent = "Running…";
      } else {
        status.textContent = job.succeeded ? "Finished: the resumed run succeeded." : "Finished with exit status " + job.returncode + ".";
        status.className = "job-finished";
      }
      if (job.new_run_id) {
        const link = document.getElementById("new-run-link");
        link.href = job.new_run_url;
        link.replaceChildren(el("code", null, job.new_run_id));
        document.getElementById("new-run").hidden = false;
      }
      if (job.status !== "running" && (job.new_run_id || ++after > 10)) {
        delete main.dataset.live;
        return;
      }
    }
  }

  function runRow(run, colors) {
    const row = el("tr");
    row.dataset.runId = run.run_id;
    const first = el("td");
    const link = el("a", "run-link");
    link.href = run.url;
    link.appendChild(el("code", null, run.run_id.slice(0, 8)));
    first.appendChild(link);
    if (run.resumed_from) {
      const note = el("span", "muted", " resumes ");
      const back = el("a");
      back.href = "/runs/" + encodeURIComponent(run.resumed_from);
      back.appendChild(el("code", null, run.resumed_from.slice(0, 8)));
      note.appendChild(back);
      first.append(" ", note);
    }
    const flow = el("td");
    const flowLink = el("a", null, run.flow);
    flowLink.href = "/?" + new URLSearchParams({ flow: run.flow });
    flow.appendChild(flowLink);
    const state = el("td");
    state.appendChild(badge(run.state, colors));
    const tasks = el("td");
    tasks.appendChild(counts(run.task_counts, colors));
    row.append(first, flow, state, el("td", "nowrap", when(run.started)), el("td", "num", seconds(run.duration)), tasks);
    return row;
  }

  async function pollRuns(span) {
    const [limit, offset] = span.split(":");
    const query = new URLSearchParams(location.search);
    query.delete("page");
    query.delete("per_page");
    query.set("limit", limit);
    query.set("offset", offset);
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 2 * POLL_MS));
      let listing;
      try {
        const response = await fetch("/api/runs?" + query, { credentials: "same-origin" });
        if (response.status === 401) return;
        if (!response.ok) continue;
        listing = await response.json();
      } catch (error) {
        continue;
      }
      const body = document.querySelector("#runs tbody");
      body.replaceChildren(...listing.runs.map((run) => runRow(run, listing.colors || {})));
      if (listing.runs.every((run) => run.finished)) {
        delete main.dataset.runsLive;
        return;
      }
    }
  }

  if (main.dataset.runsLive) pollRuns(main.dataset.runsLive);
  if (main.dataset.run && main.dataset.live) pollRun(main.dataset.run);
  if (main.dataset.job && main.dataset.live) pollJob(main.dataset.job);
})();
