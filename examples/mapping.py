"""Mapping: one task run per item, chained maps, ``unmapped``, ``flatten`` and reduce steps.

A small web-crawl flow written as for Prefect 1 (only the imports say ``flowcore``):

* ``list_sites`` returns three sites; ``fetch_pages.map`` runs once per site and returns a
  list of pages for each, so its result is a list of lists.
* ``flatten`` turns that into one flat list, and ``word_count.map`` runs once per page with a
  shared ``unmapped`` stop-word list.
* One page is broken: its ``word_count`` child fails while the others succeed.
* ``total_words`` is a reduce step. With the default trigger one failed child would stop it
  (``TriggerFailed``); with ``all_finished`` it runs and filters out the failures itself.
* ``mapped(...)`` is the keyword form of ``.map``: ``label(site=mapped(sites), prefix=">")``.

Run it with ``python examples/mapping.py``; it exits non-zero if a state or result is not
the expected one.
"""

from __future__ import annotations

import sys

from flowcore import Flow, flatten, mapped, task, unmapped
from flowcore.engine.state import Mapped
from flowcore.triggers import all_finished

PAGES = {
    "docs.example.org": ["install the package", "run the demo flow"],
    "blog.example.org": ["a flow a day", "<<broken page>>", "mapping in depth"],
    "wiki.example.org": ["the task runner state machine"],
}


@task
def list_sites() -> list[str]:
    return sorted(PAGES)


@task
def fetch_pages(site: str) -> list[str]:
    return PAGES[site]


@task
def word_count(page: str, stop_words: set[str]) -> int:
    if page.startswith("<<"):
        raise ValueError(f"cannot parse page {page!r}")
    return sum(1 for word in page.split() if word not in stop_words)


@task(trigger=all_finished)
def total_words(counts: list[object]) -> int:
    # A failed child's result is its exception: keep only the numbers.
    return sum(c for c in counts if isinstance(c, int))


@task
def label(site: str, prefix: str) -> str:
    return f"{prefix} {site}"


with Flow("crawl") as flow:
    sites = list_sites()
    pages = fetch_pages.map(sites)
    counts = word_count.map(flatten(pages), stop_words=unmapped({"a", "the", "in"}))
    total = total_words(counts)
    labels = label(site=mapped(sites), prefix=">")


def main() -> int:
    state = flow.run()
    problems = []
    print(f"flow run: {type(state).__name__}: {state.message}")
    for t in flow.sorted_tasks():
        task_state = state.result[t]
        line = f"  {t.name:<12} {type(task_state).__name__:<8}"
        if isinstance(task_state, Mapped):
            kinds = [type(child).__name__ for child in task_state.map_states]
            line += f" children: {kinds}"
        print(line.rstrip())

    count_states = state.result[counts]
    print(f"word counts per page: {count_states.result}")
    print(f"total words: {state.result[total].result}")
    print(f"labels: {state.result[labels].result}")

    child_kinds = [type(s).__name__ for s in count_states.map_states]
    if child_kinds != ["Success", "Failed", "Success", "Success", "Success", "Success"]:
        problems.append(f"unexpected word_count children: {child_kinds}")
    if state.result[total].result != 13:
        problems.append(f"total_words is {state.result[total].result}, expected 13")
    if state.result[labels].result != [f"> {site}" for site in sorted(PAGES)]:
        problems.append("labels are wrong")
    # word_count has a failed child, but the flow state is decided by the reference tasks
    # (by default the terminal ones: total_words and label), and they succeeded.
    if not state.is_successful():
        problems.append("the flow run did not succeed")
    for problem in problems:
        print(f"UNEXPECTED: {problem}", file=sys.stderr)
    print("EXAMPLE OK" if not problems else "EXAMPLE FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
