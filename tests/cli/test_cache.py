"""``flowcore cache ls|show|rm|gc``: the installed console script in subprocesses, against
stores filled by real flow runs on local disk, S3 (moto's server) and GCS (fake-gcs-server).

Each store holds six entries from three runs (conftest ``fill``): ``load`` (key "load",
values of about 1, 2 and 3 KB) and ``total`` (a 32-hex policy key each) for flows etl
(n=1, n=2) and report (n=3). What the commands did is checked through ``Cache`` in this
process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, cache_policies, task
from flowcore.caching import StorageCacheStore
from flowcore.caching.cache import Cache
from flowcore.engine.results import LocalResult
from tests.cli.conftest import RUNS, Flowcore, backdate, fill, load, run_script, write_nightly


def parsed(process: Any) -> Any:
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)


def tasks_of(entries: list[dict[str, Any]]) -> list[str]:
    return sorted(e["task"] for e in entries)


def remaining(store: str) -> list[tuple[str, str | None]]:
    return [(e.record.task, e.record.flow) for e in Cache(store).entries()]


# -- every store ---------------------------------------------------------------------------


def test_ls_lists_entries_as_a_table_and_as_json_with_filters(
    flowcore: Flowcore, store: str
) -> None:
    table, everything, report, loads, large = flowcore.all(
        ["cache", "ls", "--store", store],
        ["cache", "ls", "--store", store, "--json"],
        ["cache", "ls", "--store", store, "--flow", "report", "--json"],
        ["cache", "ls", "--store", store, "--task", "load", "--json"],
        ["cache", "ls", "--store", store, "--larger-than", "1.5KB", "--json"],
    )
    assert table.returncode == 0 and table.stderr == ""
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["key", "task", "flow", "age", "expires", "size"]
    policy_keys = [e.key for e in Cache(store).entries(task="total")]
    assert all(any(line.startswith(key) for line in lines) for key in policy_keys)  # whole keys
    assert sum(line.startswith("load ") for line in lines) == 3
    assert "in 59m" in table.stdout and "never" in table.stdout
    assert lines[-1].startswith("6 entries, ") and lines[-1].endswith(f" in {store}")

    entries = parsed(everything)
    assert tasks_of(entries) == ["load"] * 3 + ["total"] * 3
    assert [e["flow"] for e in entries] == ["etl"] * 4 + ["report"] * 2  # oldest first
    assert all(e["size"] > 0 and e["expired"] is False for e in entries)
    assert [e["size"] > 1500 for e in entries if e["task"] == "load"] == [False, True, True]
    assert tasks_of(parsed(report)) == ["load", "total"]
    assert [e["flow"] for e in parsed(loads)] == ["etl", "etl", "report"]
    assert [(e["task"], e["flow"]) for e in parsed(large)] == [("load", "etl"), ("load", "report")]


def test_show_prints_a_key_s_records(flowcore: Flowcore, store: str) -> None:
    key = Cache(store).entries(task="total")[0].key
    people, by_prefix, loads, missing = flowcore.all(
        ["cache", "show", key, "--store", store],
        ["cache", "show", key[:8], "--store", store, "--json"],
        ["cache", "show", "load", "--store", store, "--json"],
        ["cache", "show", "no-such-key", "--store", store],
    )
    assert people.returncode == 0, people.stderr
    fields = {
        line[:12].strip(): line[12:] for line in people.stdout.splitlines() if line[:12].strip()
    }
    assert fields["key"] == key and fields["task"] == "total" and fields["flow"] == "etl"
    assert fields["expires"] == "never" and fields["serializer"] == "PickleSerializer"
    assert "data:" in people.stdout and "n:" in people.stdout  # input and parameter digests
    [record] = parsed(by_prefix)
    assert record["key"] == key and set(record["inputs"]) == {"data"} and record["size"] > 0
    assert record["value_digest"].startswith("sha256:") and record["key_parts"]
    assert [r["flow"] for r in parsed(loads)] == ["etl", "etl", "report"]
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == (
        f"Error: no cache entry has key 'no-such-key' in {store}; "
        f"'flowcore cache ls --store {store}' lists the keys"
    )


def test_rm_dry_run_removes_nothing_then_rm_removes(flowcore: Flowcore, store: str) -> None:
    dry = flowcore("cache", "rm", "--store", store, "--task", "load", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sum(line.startswith("load ") for line in dry.stdout.splitlines()) == 3
    assert "Would remove 3 entries" in dry.stdout and "nothing was removed" in dry.stdout
    assert len(remaining(store)) == 6

    real = flowcore("cache", "rm", "--store", store, "--task", "load", "--yes", "--json")
    report = parsed(real)
    assert report["dry_run"] is False and tasks_of(report["entries"]) == ["load"] * 3
    assert report["bytes_freed"] > 6000
    assert remaining(store) == [("total", "etl"), ("total", "etl"), ("total", "report")]
    cache = Cache(store)
    assert isinstance(cache.store, StorageCacheStore)
    values = [loc for loc in cache.store.result.list(cache.store.prefix) if loc.endswith(".value")]
    assert len(values) == 3  # the load values went with their records

    key = cache.entries()[0].key
    one = flowcore("cache", "rm", key[:10], "--store", store)
    assert one.returncode == 0, one.stderr
    assert key in one.stdout and "Removed 1 entry" in one.stdout
    assert remaining(store) == [("total", "etl"), ("total", "report")]

    everything = parsed(flowcore("cache", "rm", "--all", "--yes", "--store", store, "--json"))
    assert len(everything["entries"]) == 2 and remaining(store) == []


def test_gc_by_expiry_age_size_and_count(flowcore: Flowcore, store: str) -> None:
    first_run = Cache(store).entries()[0].record.flow_run_id
    assert first_run is not None and backdate(store, first_run, days=10, expired=True) == 2

    expired, old = flowcore.all(
        ["cache", "ls", "--store", store, "--expired", "--json"],
        ["cache", "ls", "--store", store, "--older-than", "7d", "--json"],
    )
    assert tasks_of(parsed(expired)) == ["load"] and tasks_of(parsed(old)) == ["load", "total"]

    plain = parsed(flowcore("cache", "gc", "--store", store, "--dry-run", "--json"))
    assert plain["dry_run"] is True and tasks_of(plain["entries"]) == ["load"]  # expired only
    aged = flowcore("cache", "gc", "--store", store, "--max-age", "7d", "--dry-run")
    assert aged.returncode == 0 and "Would remove 2 entries" in aged.stdout
    assert len(remaining(store)) == 6

    report = parsed(flowcore("cache", "gc", "--store", store, "--max-age", "1w", "--json"))
    assert tasks_of(report["entries"]) == ["load", "total"] and report["bytes_freed"] > 1000
    assert (
        len(remaining(store)) == 4
    )  # etl n=2: load (~2 KB), total; report n=3: load (~3 KB), total

    by_size = parsed(flowcore("cache", "gc", "--store", store, "--max-size", "3.1KB", "--json"))
    assert [(e["task"], e["flow"]) for e in by_size["entries"]] == [("load", "etl")]
    assert sum(e.size or 0 for e in Cache(store).entries()) <= 3100

    by_count = flowcore("cache", "gc", "--store", store, "--max-entries", "1")
    assert by_count.returncode == 0 and "Removed 2 entries" in by_count.stdout
    assert remaining(store) == [("total", "report")]
    assert flowcore("cache", "gc", "--store", store).stdout == f"Nothing to remove in {store}.\n"


# -- local only ----------------------------------------------------------------------------


def test_the_default_store_is_caching_store_else_home_storage(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    empty = flowcore("cache", "ls")
    default = tmp_path / "home" / "storage"
    assert empty.returncode == 0 and empty.stdout == f"No cache entries in {default}.\n"
    fill(str(default))
    configured = tmp_path / "configured"
    fill(str(configured))
    flowcore("cache", "rm", "--flow", "report", "--yes", "--store", str(configured))
    in_home = flowcore.start(["cache", "ls", "--json"])
    in_config = flowcore.start(["cache", "ls", "--json"], FLOWCORE__CACHING__STORE=str(configured))
    assert len(parsed(in_home.finish())) == 2 * len(RUNS)
    assert len(parsed(in_config.finish())) == 4


def test_gc_reports_orphaned_values_and_stale_temporary_files(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    fill(str(store))
    beside = store / StorageCacheStore(LocalResult(dir=str(store))).directory("load")
    orphan = beside / "0123abcd.value"  # beside records: not a key_storage store's value
    temporary = beside / ".x.json.0123456789ab.tmp"
    for path in (orphan, temporary):
        path.write_bytes(b"left behind")
        two_hours_ago = time.time() - 7200
        os.utime(path, (two_hours_ago, two_hours_ago))
    dry = flowcore("cache", "gc", "--store", str(store), "--dry-run")
    assert dry.stdout == (
        f"Would remove 1 orphaned value from {store}; nothing was removed (--dry-run).\n"
    )
    report = parsed(flowcore("cache", "gc", "--store", str(store), "--json"))
    assert report == {
        "dry_run": False, "entries": [], "not_removed": [], "orphaned_values": [str(orphan)],
        "temporary_files": 1, "bytes_freed": 0,
    }  # fmt: skip
    assert not orphan.exists() and not temporary.exists() and len(remaining(str(store))) == 6


def test_names_are_printed_as_they_are(flowcore: Flowcore, tmp_path: Path) -> None:
    with Flow("[bold]nightly[/bold] ünï") as flow:
        load(Parameter("n"))
    state = flow.run(n=1, cache_store=str(tmp_path / "store"))
    assert state is not None and state.is_successful()
    listing = flowcore("cache", "ls", "--store", str(tmp_path / "store"))
    assert "[bold]nightly[/bold] ünï" in listing.stdout


def test_rm_asks_for_a_filter_or_all_and_for_yes(flowcore: Flowcore, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    fill(store)
    bare, mixed, unconfirmed = flowcore.all(
        ["cache", "rm", "--store", store],
        ["cache", "rm", "--all", "--task", "load", "--store", store],
        ["cache", "rm", "--task", "load", "--store", store],
    )
    assert bare.returncode == mixed.returncode == unconfirmed.returncode == 1
    assert bare.stderr == (
        "Error: cache rm needs a KEY or a filter (--flow, --task, --older-than, --expired); "
        "pass --all to remove every entry\n"
    )
    assert mixed.stderr.startswith("Error: --all removes every entry")
    assert unconfirmed.stderr.startswith("Error: cache rm would remove 3 entries (")
    assert "pass --yes" in unconfirmed.stderr
    assert len(remaining(store)) == 6


def test_a_missing_bucket_is_one_line(flowcore: Flowcore, s3_server: str, gcs_server: str) -> None:
    s3, gcs = flowcore.all(
        ["cache", "ls", "--store", "s3://flowcore-no-such-bucket/caches"],
        ["cache", "gc", "--store", "gs://flowcore-no-such-bucket"],
    )
    assert s3.returncode == gcs.returncode == 1
    [s3_line] = s3.stderr.splitlines()
    [gcs_line] = gcs.stderr.splitlines()
    assert s3_line.startswith(
        "Error: S3Result: list_objects_v2 s3://flowcore-no-such-bucket/caches failed: NoSuchBucket"
    )
    assert gcs_line.startswith(
        "Error: GCSResult: cannot list gs://flowcore-no-such-bucket/: no bucket"
    )
    for line in (s3_line, gcs_line):
        assert line.endswith("(check --store, and that these credentials can read it)")


# -- explain -------------------------------------------------------------------------------


def answers(process: Any) -> dict[str, tuple[str, str]]:
    return {e["task"]: (e["answer"], e["reason"]) for e in parsed(process)}


def test_explain_says_hit_miss_unknown_and_not_cached_without_running(
    flowcore: Flowcore, empty_store: str, tmp_path: Path
) -> None:
    path = write_nightly(tmp_path)
    run_script(flowcore, path, empty_store, "2026-12-05")
    before = [(e.key, e.record.created) for e in Cache(empty_store).entries()]
    table, same, other_day, unknown_param, missing_file = flowcore.all(
        ["cache", "explain", str(path), "--store", empty_store],
        ["cache", "explain", f"{path}:flow", "--store", empty_store, "--json"],
        [
            "cache",
            "explain",
            str(path),
            "--store",
            empty_store,
            "--param",
            "day=2026-12-06",
            "--json",
        ],
        ["cache", "explain", str(path), "--store", empty_store, "--param", "days=1"],
        ["cache", "explain", str(tmp_path / "nope.py"), "--store", empty_store],
    )
    assert table.returncode == 0 and table.stderr == "", table.stderr
    header, _, *rows = table.stdout.splitlines()
    assert header.split() == ["task", "answer", "reason"]
    assert [row.split()[:2] for row in rows[:-1]] == [
        ["day", "not"], ["fetch", "hit"], ["clean", "hit"], ["summary", "not"], ["publish", "unknown"], ["export", "hit"],
    ]  # fmt: skip
    assert (
        rows[-1]
        == f"Flow 'nightly': 3 hits, 1 unknown, 2 not cached in {empty_store}; nothing was run."
    )

    found = parsed(same)
    assert [e["slug"] for e in found] == [
        "day",
        "fetch-1",
        "clean-1",
        "summary-1",
        "publish-1",
        "export-1",
    ]
    assert {e["answer"] for e in found} <= {"hit", "miss", "unknown", "not cached"}
    now = answers(same)
    assert now["day"] == ("not cached", "parameter: '2026-12-05'")
    assert now["fetch"][1].startswith("Cached result found for key 'fetch' (written by flow run ")
    assert now["clean"][0] == "hit" and "Cached result found for key" in now["clean"][1]
    assert now["export"] == ("hit", "Result found at task target export-2026-12-05.txt")
    assert now["summary"] == (
        "not cached",
        "no cache_for, cache_policy or target: the task runs every time",
    )
    assert now["publish"] == ("unknown", "depends on summary, which would run")
    assert [e.get("key") for e in found if e["task"] == "fetch"] == ["fetch"]

    later = answers(other_day)
    assert later["fetch"] == ("miss", "cache miss for key 'fetch': parameter 'day' changed")
    assert later["clean"] == ("unknown", "depends on fetch, which would run")
    assert later["export"] == ("miss", "no value at task target export-2026-12-06.txt yet")

    assert unknown_param.returncode == 1
    assert (
        unknown_param.stderr
        == "Error: Flow 'nightly' has no parameter 'days' (its parameters: day): fix the "
        "--param name\n"
    )
    assert missing_file.returncode == 1 and missing_file.stderr.startswith("Error: No flow file ")
    assert [
        (e.key, e.record.created) for e in Cache(empty_store).entries()
    ] == before  # nothing was written
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["export-2026-12-05.txt"]


def test_explain_names_changed_code_and_expiry(
    flowcore: Flowcore, empty_store: str, tmp_path: Path
) -> None:
    path = write_nightly(tmp_path)
    run_script(flowcore, path, empty_store, "2026-12-05")
    write_nightly(tmp_path, scale=3)  # clean reads SCALE: its code changed
    changed = answers(flowcore("cache", "explain", str(path), "--store", empty_store, "--json"))
    assert changed["fetch"][0] == "hit" and changed["clean"][0] == "miss"
    assert changed["clean"][1].startswith("cache miss for key '")
    assert "': code changed since the task's last record (flow run " in changed["clean"][1]

    [fetched] = Cache(empty_store).entries(task="fetch")
    assert fetched.record.flow_run_id is not None
    backdate(empty_store, fetched.record.flow_run_id, days=1, expired=True)
    expired = answers(flowcore("cache", "explain", str(path), "--store", empty_store, "--json"))
    assert expired["fetch"][0] == "miss"
    assert expired["fetch"][1].startswith(
        "cache miss for key 'fetch': the cached value expired at "
    )
    assert expired["clean"] == ("unknown", "depends on fetch, which would run")


def test_explain_with_no_store_set_says_where_records_are(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    path = write_nightly(tmp_path)
    malformed = flowcore("cache", "explain", str(path), "--param", "day")
    assert malformed.returncode == 1 and malformed.stderr == (
        "Error: Invalid value for '--param' / '-p': 'day' is not NAME=VALUE (VALUE in JSON, or plain text)\n"
    )
    found = answers(
        flowcore("cache", "explain", str(path), "--json", "--param", 'day="2026-12-07"')
    )
    assert found["fetch"] == (
        "miss",
        "cache miss for key 'fetch': nothing is stored under it yet (no cache store is set: records are "
        "kept in the memory of the process that ran the flow)",
    )
    assert found["day"] == ("not cached", "parameter: '2026-12-07'")


def _damage_a_load_record(store: Path, how: str) -> Path:
    [record, *_] = sorted(
        (store / StorageCacheStore(LocalResult(dir=str(store))).directory("load")).glob("*.json")
    )
    document = json.loads(record.read_text())
    if how == "garbage":
        record.write_text("{{{")
        return record
    if how == "loc_abs":
        document["value"]["location"] = "/etc/passwd"
    elif how == "loc_int":
        document["value"]["location"] = 5
    else:
        document["parameters"] = [1]
    record.write_text(json.dumps(document))
    return record


@pytest.mark.parametrize("how", ["loc_abs", "loc_int", "params_list", "garbage"])
def test_a_damaged_record_is_listed_as_damaged_and_can_be_removed(
    flowcore: Flowcore, tmp_path: Path, how: str
) -> None:
    store = tmp_path / "store"
    fill(str(store))
    damaged = _damage_a_load_record(store, how)
    table, show, dry, listed = flowcore.all(
        ["cache", "ls", "--store", str(store)],
        ["cache", "show", "load", "--store", str(store)],
        ["cache", "gc", "--dry-run", "--store", str(store)],
        ["cache", "ls", "--json", "--store", str(store)],
    )
    for process in (table, show, dry, listed):
        assert process.returncode == 0 and process.stderr == "", process.stderr
    assert "6 entries" in table.stdout and "damaged" in table.stdout
    assert f"1 entry is damaged and never used; 'flowcore cache gc --store {store}'" in table.stdout
    assert str(damaged) in table.stdout and str(damaged) in show.stdout
    assert "Would remove 1 entry" in dry.stdout and damaged.exists()
    # never used, as --expired selects it
    assert [e["expired"] for e in parsed(listed) if e["problem"]] == [True]

    removed = flowcore("cache", "rm", "load", "-y", "--store", str(store))
    assert removed.returncode == 0, removed.stderr
    assert "Removed 3 entries" in removed.stdout and not damaged.exists()
    assert sorted(task for task, _ in remaining(str(store))) == ["total"] * 3


def test_gc_and_rm_all_remove_records_that_are_not_json(flowcore: Flowcore, tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill(str(store))
    damaged = _damage_a_load_record(store, "garbage")
    gc = flowcore("cache", "gc", "--store", str(store))
    assert gc.returncode == 0 and "Removed 1 entry" in gc.stdout and not damaged.exists()
    damaged = _damage_a_load_record(store, "garbage")
    everything = parsed(flowcore("cache", "rm", "--all", "-y", "--json", "--store", str(store)))
    assert len(everything["entries"]) == 5 and not damaged.exists()
    assert not list(store.rglob("*.json"))


def test_gc_reports_a_misplaced_record_removed_once(flowcore: Flowcore, tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill(str(store))
    [record, *_] = sorted(
        (store / StorageCacheStore(LocalResult(dir=str(store))).directory("load")).glob("*.json")
    )
    (store / "zz" / "other").mkdir(parents=True)
    moved = record.rename(store / "zz" / "other" / record.name)
    first = flowcore("cache", "gc", "--store", str(store))
    assert first.returncode == 0 and "Removed 1 entry" in first.stdout and not moved.exists()
    second = flowcore("cache", "gc", "--store", str(store))
    assert second.stdout == f"Nothing to remove in {store}.\n"


def test_rm_of_a_record_that_cannot_be_removed_fails_saying_so(
    flowcore: Flowcore, tmp_path: Path
) -> None:
    store, outside = tmp_path / "store", tmp_path / "outside.json"
    fill(str(store))
    [record, *_] = sorted(
        (store / StorageCacheStore(LocalResult(dir=str(store))).directory("load")).glob("*.json")
    )
    outside.write_bytes(record.read_bytes())
    record.unlink()
    record.symlink_to(outside)
    removed = flowcore("cache", "rm", "load", "-y", "--store", str(store))
    assert removed.returncode == 1 and "Removed 2 entries" in removed.stdout
    assert "1 entry could not be removed" in removed.stderr and str(record) in removed.stderr
    assert record.is_symlink() and outside.exists()


def test_verbs_on_records_kept_apart_from_their_values(flowcore: Flowcore, tmp_path: Path) -> None:
    keys, values = tmp_path / "keys", tmp_path / "values"

    @task(cache_policy=cache_policies.INPUTS.configure(key_storage=str(keys)))
    def triple(n: int) -> int:
        return 3 * n

    runs = []
    for n in (1, 2):
        with Flow("apart") as flow:
            triple(Parameter("n"))
        runs.append(flow.run(n=n, cache_store=str(values)).flow_run_id)
    assert backdate(str(keys), runs[0], days=2) == 1
    then = time.time() - 3 * 3600  # values gc would take for orphans, were they
    for value in values.rglob("*.value"):
        os.utime(value, (then, then))
    alone, both, in_values = flowcore.all(
        ["cache", "ls", "--store", str(keys)],
        ["cache", "ls", "--store", str(keys), "--values", str(values), "--json"],
        ["cache", "gc", "--store", str(values), "--dry-run"],
    )
    assert alone.returncode == 0 and "damaged" not in alone.stdout, alone.stdout
    assert (
        "never" in alone.stdout
        and (f"2 entries keep their values apart from their records (key_storage), in {values}")
        in alone.stdout
    )
    assert [e["problem"] for e in parsed(both)] == [None, None]
    assert all(e["size"] > 0 for e in parsed(both))
    assert in_values.stdout == f"Nothing to remove in {values}.\n"

    refused = flowcore("cache", "gc", "--store", str(keys), "--max-age", "1d")
    assert refused.returncode == 1 and f"--values {values}" in refused.stderr
    assert len(list(keys.rglob("*.json"))) == 2 and len(list(values.rglob("*.value"))) == 2

    report = parsed(
        flowcore(
            "cache",
            "gc",
            "--store",
            str(keys),
            "--values",
            str(values),
            "--max-age",
            "1d",
            "--json",
        )
    )
    assert [e["flow_run_id"] for e in report["entries"]] == runs[:1]
    assert report["orphaned_values"] == []
    [kept] = Cache(str(keys), values=str(values)).entries()
    assert [v.name for v in values.rglob("*.value")] == [
        Path(kept.record.value_location or "").name
    ]
    removed = flowcore("cache", "rm", kept.key, "--store", str(keys), "--values", str(values))
    assert removed.returncode == 0 and "Removed 1 entry" in removed.stdout, removed.stderr
    assert not list(keys.rglob("*.json")) and not list(values.rglob("*.value"))
