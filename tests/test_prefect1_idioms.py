"""Whole flows in the idioms Prefect 1 users write, with the outcome Prefect 1.4.1 gives.

Each section builds and runs a small flow as a Prefect 1 user would (only the imports say
``flowcore``) and sums up its states: class, message, result, and a mapped task's children.
The expected summaries were recorded by running the same flows under prefect 1.4.1 (in a
separate virtual environment, ``import prefect`` in place of ``import flowcore``) and are
compared line for line. Where flowcore differs on purpose, the section says so:

* a task that times out: its ``TimedOut`` state's result, the ``TaskTimeoutSignal``, names
  the task and the limit (Prefect 1: "Execution timed out.");
* ``CronSchedule.next(after=...)`` raises ``AttributeError`` in Prefect 1.4.1 with
  pendulum 3 (``pendulum.tz._Timezone``); flowcore answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

import flowcore
from flowcore import Flow, Parameter, Task, apply_map, case, context, flatten, task, unmapped
from flowcore.engine import signals
from flowcore.engine.cache_validators import (
    all_inputs,
    all_parameters,
    duration_only,
    never_use,
    partial_inputs_only,
    partial_parameters_only,
)
from flowcore.engine.results import LocalResult
from flowcore.engine.state import State, Success
from flowcore.executors import LocalDaskExecutor, LocalExecutor
from flowcore.schedules import CronSchedule, IntervalSchedule
from flowcore.tasks.control_flow import FilterTask, ifelse, merge, switch
from flowcore.tasks.core.collections import Dict, List
from flowcore.tasks.core.function import FunctionTask
from flowcore.triggers import (
    all_finished,
    always_run,
    any_failed,
    not_all_skipped,
    some_failed,
    some_successful,
)
from flowcore.utilities.tasks import defaults_from_attrs


def _state(state: State | None) -> str:
    if state is None:
        return "<missing>"
    result = state.result
    if isinstance(result, BaseException):
        result = f"{type(result).__name__}({result})"
    children = ""
    if state.is_mapped():
        children = " [" + ",".join(f"{type(c).__name__}:{c.result!r}" for c in state.map_states)
        children += "]"
    return f"{type(state).__name__} {result!r}{children}"


def _summary(name: str, state: State, tasks: list[tuple[str, Task]]) -> list[str]:
    lines = [f"== {name}: {type(state).__name__} {state.message!r}"]
    lines += [f"  {label}: {_state(state.result.get(t))}" for label, t in tasks]
    return lines


@task
def inc(x: int) -> int:
    return x + 1


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def listify(n: int) -> list[int]:
    return list(range(n))


@task
def say(x: Any) -> str:
    return f"said {x}"


@task
def value(x: Any) -> Any:
    return x


def control_flow() -> list[str]:
    @task
    def is_big(x: int) -> bool:
        return x > 3

    with Flow("control") as flow:
        n = Parameter("n", default=5)
        big = is_big(n)
        with case(big, True):
            a = say("big")
        with case(big, False):
            b = say("small")
        m = merge(a, b)
    lines = _summary("control n=5", flow.run(), [("a", a), ("b", b), ("m", m)])
    lines += _summary("control n=1", flow.run(parameters={"n": 1}), [("a", a), ("b", b), ("m", m)])
    return lines


CONTROL_FLOW = """
== control n=5: Success 'All reference tasks succeeded.'
  a: Success 'said big'
  b: Skipped None
  m: Success 'said big'
== control n=1: Success 'All reference tasks succeeded.'
  a: Skipped None
  b: Success 'said small'
  m: Success 'said small'
"""


def mapping() -> list[str]:
    @task
    def nested(n: int) -> list[list[int]]:
        return [[i, i * 10] for i in range(n)]

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    @task
    def context_keys(x: int) -> tuple[Any, ...]:
        return (
            context.get("map_index"),
            context.get("task_run_count"),
            context.get("task_name"),
            context.get("flow_name"),
            bool(context.get("today")),
        )

    with Flow("mapping") as flow:
        xs = listify(4)
        ys = inc.map(xs)
        zs = add.map(ys, unmapped(10))
        tot = total(zs)
        flat = inc.map(flatten(nested(3)))
        keys = context_keys.map(xs)
    return _summary(
        "mapping",
        flow.run(),
        [("ys", ys), ("zs", zs), ("tot", tot), ("flat", flat), ("keys", keys)],
    )


MAPPING = """
== mapping: Success 'All reference tasks succeeded.'
  ys: Mapped [1, 2, 3, 4] [Success:1,Success:2,Success:3,Success:4]
  zs: Mapped [11, 12, 13, 14] [Success:11,Success:12,Success:13,Success:14]
  tot: Success 50
  flat: Mapped [1, 1, 2, 11, 3, 21] [Success:1,Success:1,Success:2,Success:11,Success:3,Success:21]
  keys: Mapped [(0, 1, 'context_keys', 'mapping', True), (1, 1, 'context_keys', 'mapping', True), (2, 1, 'context_keys', 'mapping', True), (3, 1, 'context_keys', 'mapping', True)] [Success:(0, 1, 'context_keys', 'mapping', True),Success:(1, 1, 'context_keys', 'mapping', True),Success:(2, 1, 'context_keys', 'mapping', True),Success:(3, 1, 'context_keys', 'mapping', True)]
"""


def signals_and_triggers() -> list[str]:
    @task
    def skipper(x: int) -> int:
        if x == 2:
            raise signals.SKIP("skip two")
        return x

    @task
    def failer(x: int) -> int:
        if x == 1:
            raise signals.FAIL("one fails")
        return x

    @task(trigger=all_finished)
    def cleanup(xs: list[int]) -> str:
        return "cleaned"

    @task(trigger=any_failed)
    def on_fail(x: Any) -> str:
        return "handled failure"

    @task(skip_on_upstream_skip=False)
    def after_skip(x: Any) -> str:
        return f"ran after {x!r}"

    @task
    def looper() -> int:
        done = context.get("task_loop_result", 0)
        if done < 3:
            raise signals.LOOP(result=done + 1)
        return int(done)

    with Flow("signals") as flow:
        xs = listify(4)
        sk = skipper.map(xs)
        fa = failer.map(xs)
        cl = cleanup(fa)
        of = on_fail(fa)
        af = after_skip.map(sk)
        lp = looper()
    tasks = [("sk", sk), ("fa", fa), ("cl", cl), ("of", of), ("af", af), ("lp", lp)]
    return _summary("signals", flow.run(), tasks)


SIGNALS_AND_TRIGGERS = """
== signals: Success 'All reference tasks succeeded.'
  sk: Mapped [0, 1, SKIP('skip two'), 3] [Success:0,Success:1,Skipped:SKIP('skip two'),Success:3]
  fa: Mapped [0, FAIL('one fails'), 2, 3] [Success:0,Failed:FAIL('one fails'),Success:2,Success:3]
  cl: Success 'cleaned'
  of: Success 'handled failure'
  af: Mapped ['ran after 0', 'ran after 1', "ran after SKIP('skip two')", 'ran after 3'] [Success:'ran after 0',Success:'ran after 1',Success:"ran after SKIP('skip two')",Success:'ran after 3']
  lp: Success 3
"""


def operators_and_classes() -> list[str]:
    @task(nout=2)
    def pair(x: int) -> tuple[int, int]:
        return x, x * 2

    class Scaled(Task):
        def __init__(self, k: int = 3, **kwargs: Any) -> None:
            self.k = k
            super().__init__(**kwargs)

        def run(self, x: int, y: int = 2) -> int:
            return x * self.k + y

    def inner(x: Any) -> Any:
        return add(inc(x), 100)

    with Flow("ops") as flow:
        y = inc(1) + 10
        z = y * 2
        w = listify(5)[2]
        p1, p2 = pair(7)
        mine = Scaled(k=5, name="mine")
        o1, o2, o3 = mine(1), mine(2, y=0), Scaled()(x=4)
        res = apply_map(inner, listify(3))
    tasks = [("y", y), ("z", z), ("w", w), ("p1", p1), ("p2", p2)]
    tasks += [("o1", o1), ("o2", o2), ("o3", o3), ("res", res)]
    lines = _summary("ops", flow.run(), tasks)
    return lines + [f"  names {sorted(t.name for t in flow.tasks if t.name in ('mine', 'Scaled'))}"]


OPERATORS_AND_CLASSES = """
== ops: Success 'All reference tasks succeeded.'
  y: Success 12
  z: Success 24
  w: Success 2
  p1: Success 7
  p2: Success 14
  o1: Success 7
  o2: Success 10
  o3: Success 14
  res: Mapped [101, 102, 103] [Success:101,Success:102,Success:103]
  names ['Scaled', 'mine', 'mine']
"""


def resources_retries_handlers() -> list[str]:
    """(As in Prefect 1.4.1, a resource manager's setup and cleanup run again on each pass
    of the flow: three here, as a task is retried twice with no delay.)"""
    calls: list[str] = []

    @flowcore.resource_manager
    class Resource:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def setup(self) -> str:
            calls.append("setup")
            return f"res-{self.tag}"

        def cleanup(self, resource: str) -> None:
            calls.append(f"cleanup {resource}")

    @task
    def use(resource: str, x: int) -> str:
        return f"{resource}:{x}"

    tries = [0]

    @task(max_retries=2, retry_delay=timedelta(seconds=0))
    def flaky() -> str:
        tries[0] += 1
        if tries[0] < 3:
            raise ValueError("boom")
        return "ok"

    handled: list[str] = []

    def handler(obj: Any, old: State, new: State) -> State:
        handled.append(f"{type(old).__name__}->{type(new).__name__}")
        return new

    @task(state_handlers=[handler])
    def handled_task() -> int:
        return 1

    with Flow("resource", state_handlers=[handler]) as flow:
        with Resource("a") as resource:
            used = use(resource, 1)
        flaked = flaky()
        handled_task()
    lines = _summary("resource", flow.run(), [("used", used), ("flaked", flaked)])
    return lines + [f"  calls {calls} tries {tries[0]}", f"  handled {sorted(handled)}"]


RESOURCES_RETRIES_HANDLERS = """
== resource: Success 'All reference tasks succeeded.'
  used: Success 'res-a:1'
  flaked: Success 'ok'
  calls ['setup', 'cleanup res-a', 'setup', 'cleanup res-a', 'setup', 'cleanup res-a'] tries 3
  handled ['Pending->Running', 'Running->Success', 'Running->Success', 'Scheduled->Running']
"""


def switches_filters_and_failures() -> list[str]:
    @task
    def pick(x: str) -> str:
        return f"picked {x}"

    @task
    def boom(x: int) -> int:
        raise ValueError(f"bad {x}")

    with Flow("switch") as flow:
        a, b, c = pick("A"), pick("B"), pick("C")
        switch(value("b"), {"a": a, "b": b, "c": c})
        yes, no = pick("T"), pick("F")
        ifelse(value(False), yes, no)
        kept = FilterTask(filter_func=lambda x: x % 2 == 0)(inc.map(listify(6)))
        ok = inc(1)
        bad = boom(ok)
        down = inc(bad)
        flow.set_reference_tasks([ok, kept])
    tasks = [("a", a), ("b", b), ("c", c), ("yes", yes), ("no", no), ("kept", kept)]
    tasks += [("ok", ok), ("bad", bad), ("down", down)]
    return _summary("switch", flow.run(), tasks)


SWITCHES_FILTERS_AND_FAILURES = """
== switch: Success 'All reference tasks succeeded.'
  a: Skipped None
  b: Success 'picked B'
  c: Skipped None
  yes: Skipped None
  no: Success 'picked F'
  kept: Success [2, 4, 6]
  ok: Success 2
  bad: Failed 'ValueError(bad 2)'
  down: TriggerFailed 'TRIGGERFAIL(Trigger was "all_successful" but some of the upstream tasks failed.)'
"""


def caching_looping_and_parameters() -> list[str]:
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=all_inputs)
    def cached(x: int) -> int:
        calls.append(x)
        return x * 3

    @task
    def loop_map(x: int) -> int:
        n = context.get("task_loop_result", x)
        if n < x + 2:
            raise signals.LOOP(result=n + 1)
        return int(n)

    with Flow("cache") as flow:
        p = Parameter("p", default=2)
        cc = cached(p)
        lm = loop_map.map(listify(3))
        em = inc.map(listify(0))
        after_empty = value(em)
    tasks = [("cc", cc), ("lm", lm), ("em", em), ("after_empty", after_empty)]
    lines = _summary("cache 1", flow.run(), tasks)
    lines += _summary("cache 2", flow.run(), tasks[:1])
    lines += _summary("cache p=5", flow.run(parameters={"p": 5}), tasks[:1])
    lines.append(f"  calls {calls}")
    with Flow("required") as required:
        r2 = inc(Parameter("req"))
    try:
        required.run()
    except ValueError as exc:
        lines.append(f"== required: ValueError: {exc}")
    lines += _summary("required given", required.run(parameters={"req": 1}), [("r2", r2)])
    with Flow("task_states") as given:
        x1 = value(10)
        x2 = inc(x1)
    lines += _summary(
        "task_states", given.run(task_states={x1: Success(result=41)}), [("x1", x1), ("x2", x2)]
    )
    return lines


CACHING_LOOPING_AND_PARAMETERS = """
== cache 1: Success 'All reference tasks succeeded.'
  cc: Cached 6
  lm: Mapped [2, 3, 4] [Success:2,Success:3,Success:4]
  em: Mapped [] []
  after_empty: Success []
== cache 2: Success 'All reference tasks succeeded.'
  cc: Cached 6
== cache p=5: Success 'All reference tasks succeeded.'
  cc: Cached 15
  calls [2, 5]
== required: ValueError: Flow.run did not receive the following required parameters: req
== required given: Success 'All reference tasks succeeded.'
  r2: Success 2
== task_states: Success 'All reference tasks succeeded.'
  x1: Success 41
  x2: Success 42
"""


def executors_names_and_schedules() -> list[str]:
    @task(task_run_name="run-{x}", tags=["t1"])
    def named(x: int) -> tuple[Any, ...]:
        return (context.get("task_run_name"), sorted(context.get("task_tags", [])))

    with Flow("dask") as flow:
        mapped = inc.map(listify(5))
        gathered = value(mapped)
        one = named(3)
        many = named.map([1, 2])
    tasks = [("mapped", mapped), ("gathered", gathered), ("one", one), ("many", many)]
    executor = LocalDaskExecutor(scheduler="threads", num_workers=2)
    lines = _summary("localdask", flow.run(executor=executor), tasks)
    interval = IntervalSchedule(
        start_date=pendulum.datetime(2020, 1, 1), interval=timedelta(hours=6)
    )
    after = pendulum.datetime(2020, 1, 2, 1)
    lines.append(f"== schedule {[str(d) for d in interval.next(3, after=after)]}")
    return lines


EXECUTORS_NAMES_AND_SCHEDULES = """
== localdask: Success 'All reference tasks succeeded.'
  mapped: Mapped [1, 2, 3, 4, 5] [Success:1,Success:2,Success:3,Success:4,Success:5]
  gathered: Success [1, 2, 3, 4, 5]
  one: Success ('run-3', ['t1'])
  many: Mapped [('run-1', ['t1']), ('run-2', ['t1'])] [Success:('run-1', ['t1']),Success:('run-2', ['t1'])]
== schedule ['2020-01-02 06:00:00+00:00', '2020-01-02 12:00:00+00:00', '2020-01-02 18:00:00+00:00']
"""


def more_triggers_and_signals() -> list[str]:
    @task
    def maybe_fail(x: int) -> int:
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    @task(trigger=some_successful(at_least=2))
    def some_ok(xs: list[int]) -> str:
        return "some ok"

    @task(trigger=not_all_skipped)
    def not_skipped(xs: list[int]) -> str:
        return "not all skipped"

    @task(trigger=always_run)
    def always(xs: list[int]) -> str:
        return "always"

    @task(trigger=some_failed(at_most=1))
    def few_failed(xs: list[int]) -> str:
        return "few failed"

    def rescue(obj: Any, old: State, new: State) -> State:
        return Success(result="rescued", message="rescued by handler") if new.is_failed() else new

    @task(state_handlers=[rescue])
    def doomed() -> None:
        raise ValueError("doomed")

    @task
    def early() -> None:
        raise signals.SUCCESS(message="early", result=99)

    calls = [0]

    @task(max_retries=1, retry_delay=timedelta(seconds=0))
    def retry_signal() -> str:
        calls[0] += 1
        if calls[0] == 1:
            raise signals.RETRY("again")
        return "after retry"

    with Flow("triggers") as flow:
        mf = maybe_fail.map(listify(4))
        tasks = [("mf", mf), ("some_ok", some_ok(mf)), ("not_skipped", not_skipped(mf))]
        tasks += [("always", always(mf)), ("few_failed", few_failed(mf)), ("doomed", doomed())]
        tasks += [("early", early()), ("retry_signal", retry_signal())]
    lines = _summary("triggers", flow.run(), tasks)
    return lines + [f"  retry_signal calls {calls[0]}"]


MORE_TRIGGERS_AND_SIGNALS = """
== triggers: Failed 'Some reference tasks failed.'
  mf: Mapped [0, ValueError('odd 1'), 2, ValueError('odd 3')] [Success:0,Failed:ValueError('odd 1'),Success:2,Failed:ValueError('odd 3')]
  some_ok: Success 'some ok'
  not_skipped: TriggerFailed 'TRIGGERFAIL(Trigger was "not_all_skipped" but some of the upstream tasks failed.)'
  always: Success 'always'
  few_failed: TriggerFailed 'TRIGGERFAIL(Trigger was "some_failed" but thresholds were not met.)'
  doomed: Success 'rescued'
  early: Success 99
  retry_signal: Success 'after retry'
  retry_signal calls 2
"""


def child_retries_and_nested_maps() -> list[str]:
    counts: dict[int, int] = {}

    @task(max_retries=2, retry_delay=timedelta(seconds=0))
    def child_flaky(x: int) -> int:
        counts[x] = counts.get(x, 0) + 1
        if x == 1 and counts[x] < 3:
            raise ValueError("flaky child")
        return x * 10

    @task
    def explode(x: int) -> list[int]:
        return [x] * x

    with Flow("children") as flow:
        cf = child_flaky.map(listify(3))
        total = task(lambda xs: sum(xs), name="total")(cf)
        exploded = explode.map(listify(4))
        flat = inc.map(flatten(exploded))
        again = explode.map(flat)
    tasks = [("cf", cf), ("total", total), ("exploded", exploded), ("flat", flat)]
    lines = _summary("children", flow.run(), [*tasks, ("again", again)])
    return lines + [f"  counts {sorted(counts.items())}"]


CHILD_RETRIES_AND_NESTED_MAPS = """
== children: Success 'All reference tasks succeeded.'
  cf: Mapped [0, 10, 20] [Success:0,Success:10,Success:20]
  total: Success 30
  exploded: Mapped [[], [1], [2, 2], [3, 3, 3]] [Success:[],Success:[1],Success:[2, 2],Success:[3, 3, 3]]
  flat: Mapped [2, 3, 3, 4, 4, 4] [Success:2,Success:3,Success:3,Success:4,Success:4,Success:4]
  again: Mapped [[2, 2], [3, 3, 3], [3, 3, 3], [4, 4, 4, 4], [4, 4, 4, 4], [4, 4, 4, 4]] [Success:[2, 2],Success:[3, 3, 3],Success:[3, 3, 3],Success:[4, 4, 4, 4],Success:[4, 4, 4, 4],Success:[4, 4, 4, 4]]
  counts [(0, 1), (1, 3), (2, 1)]
"""


def library_tasks_and_flow_edits(tmp_dir: str) -> list[str]:
    class Greeter(Task):
        def __init__(self, greeting: str = "hi", **kwargs: Any) -> None:
            self.greeting = greeting
            super().__init__(**kwargs)

        @defaults_from_attrs("greeting")
        def run(self, who: str, greeting: str | None = None) -> str:
            return f"{greeting} {who}"

    @task(checkpoint=True, result=LocalResult(dir=tmp_dir, location="{task_name}-{x}.pkl"))
    def saved(x: int) -> int:
        return x * 2

    with Flow("library") as flow:
        tasks = [("list", List()(inc(1), inc(2))), ("dict", Dict()(keys=["a", "b"], values=[1, 2]))]
        tasks += [("function", FunctionTask(lambda: "fn", name="fnt")())]
        tasks += [("g1", Greeter()("bob")), ("g2", Greeter(greeting="yo")("amy", greeting="hey"))]
        tasks += [("renamed", inc(5, task_args={"name": "renamed", "tags": ["x"]}))]
        one, many = saved(3), saved.map([4, 5])
        y = inc(inc(1))
    times100 = task(lambda v: v * 100, name="times100")
    flow.add_edge(y, times100, key="v")
    copied = flow.copy()
    with context(checkpointing=True):
        state = flow.run()
    lines = _summary(
        "library", state, [*tasks, ("one", one), ("many", many), ("times100", times100)]
    )
    locations = [state.result[one]._result.location]
    locations += [c._result.location for c in state.result[many].map_states]
    lines.append(f"  locations {[os.path.basename(str(loc)) for loc in locations]}")
    lines.append(f"  files {sorted(os.listdir(tmp_dir))}")
    (renamed,) = flow.get_tasks(name="renamed")
    lines.append(
        f"  names {sorted(t.name for t in flow.tasks)} renamed tags {sorted(renamed.tags)}"
    )
    lines.append(f"  copy tasks {len(copied.tasks)} edges {len(copied.edges)}")
    flow.replace(times100, task(lambda v: v - 1, name="dec"))
    lines.append(f"  after replace {sorted(t.name for t in flow.tasks)}")
    with Flow("params") as params:
        shown = task(lambda v: repr(v), name="show")(Parameter("p", default=None, required=False))
    lines += _summary("params", params.run(), [("shown", shown)])
    try:
        params.run(parameters={"zzz": 1})
    except ValueError as exc:
        lines.append(f"  unknown parameter: {exc}")
    return lines


LIBRARY_TASKS_AND_FLOW_EDITS = """
== library: Success 'All reference tasks succeeded.'
  list: Success [2, 3]
  dict: Success {'a': 1, 'b': 2}
  function: Success 'fn'
  g1: Success 'hi bob'
  g2: Success 'hey amy'
  renamed: Success 6
  one: Success 6
  many: Mapped [8, 10] [Success:8,Success:10]
  times100: Success 300
  locations ['saved-3.pkl', 'saved-4.pkl', 'saved-5.pkl']
  files ['saved-3.pkl', 'saved-4.pkl', 'saved-5.pkl']
  names ['Dict', 'Greeter', 'Greeter', 'List', '[4, 5]', 'fnt', 'inc', 'inc', 'inc', 'inc', 'renamed', 'saved', 'saved', 'times100'] renamed tags ['x']
  copy tasks 14 edges 5
  after replace ['Dict', 'Greeter', 'Greeter', 'List', '[4, 5]', 'dec', 'fnt', 'inc', 'inc', 'inc', 'inc', 'renamed', 'saved', 'saved']
== params: Success 'All reference tasks succeeded.'
  shown: Success 'None'
  unknown parameter: Flow.run received the following unexpected parameters: zzz
"""


def validators_and_targets(tmp_dir: str) -> list[str]:
    calls: list[tuple[str, int, int]] = []

    def cached_add(name: str, validator: Any) -> Any:
        @task(name=name, cache_for=timedelta(hours=1), cache_validator=validator)
        def add_cached(x: int, y: int) -> int:
            calls.append((name, x, y))
            return x + y

        return add_cached

    with Flow("validators") as flow:
        a, b = Parameter("a", default=1), Parameter("b", default=2)
        tasks = [
            (name, cached_add(name, validator)(a, b))
            for name, validator in [
                ("inputs_x", partial_inputs_only(validate_on=["x"])),
                ("params_a", partial_parameters_only(validate_on=["a"])),
                ("all_params", all_parameters),
                ("duration", duration_only),
                ("never", never_use),
            ]
        ]
    lines: list[str] = []
    flow.run()
    for label, parameters in [("same", {}), ("b=5", {"b": 5}), ("a=7", {"a": 7})]:
        calls.clear()
        lines += _summary(f"validators {label}", flow.run(parameters=parameters), tasks)
        lines.append(f"  calls {sorted(calls)}")

    ran: list[int] = []

    @task(checkpoint=True, result=LocalResult(dir=tmp_dir), target="{task_name}-{x}.txt")
    def targeted(x: int) -> int:
        ran.append(x)
        return x * 2

    with Flow("targets") as targets:
        one, many = targeted(1), targeted.map([2, 3])
    with context(checkpointing=True):
        targets.run()
        lines += _summary("targets again", targets.run(), [("one", one), ("many", many)])
    return lines + [f"  ran {ran} files {sorted(os.listdir(tmp_dir))}"]


VALIDATORS_AND_TARGETS = """
== validators same: Success 'All reference tasks succeeded.'
  inputs_x: Cached 3
  params_a: Cached 3
  all_params: Cached 3
  duration: Cached 3
  never: Cached 3
  calls [('never', 1, 2)]
== validators b=5: Success 'All reference tasks succeeded.'
  inputs_x: Cached 3
  params_a: Cached 3
  all_params: Cached 6
  duration: Cached 3
  never: Cached 6
  calls [('all_params', 1, 5), ('never', 1, 5)]
== validators a=7: Success 'All reference tasks succeeded.'
  inputs_x: Cached 9
  params_a: Cached 9
  all_params: Cached 9
  duration: Cached 3
  never: Cached 9
  calls [('all_params', 7, 2), ('inputs_x', 7, 2), ('never', 7, 2), ('params_a', 7, 2)]
== targets again: Success 'All reference tasks succeeded.'
  one: Cached 2
  many: Mapped [4, 6] [Cached:4,Cached:6]
  ran [1, 2, 3] files ['targeted-1.txt', 'targeted-2.txt', 'targeted-3.txt']
"""


def retries_skips_and_handlers() -> list[str]:
    tries = [0]
    failures: list[tuple[str, str]] = []

    def on_failure(task_: Task, state: State) -> None:
        failures.append((task_.name, type(state).__name__))

    @task(
        max_retries=2,
        retry_delay=timedelta(seconds=0),
        retry_on=KeyError,
        on_failure=on_failure,
    )
    def picky() -> None:
        tries[0] += 1
        raise ValueError("not retried")

    @task(max_retries=1, retry_delay=timedelta(seconds=0), retry_on=(ValueError,))
    def retried() -> str:
        tries[0] += 10
        if tries[0] < 20:
            raise ValueError("retried")
        return "ok"

    @task
    def skip_it() -> None:
        raise signals.SKIP("skipped")

    @task
    def mixed() -> list[Any]:
        return [1, None, ValueError("x"), 2]

    def broken_handler(obj: Any, old: State, new: State) -> State:
        raise KeyError("handler broke")

    @task(state_handlers=[broken_handler])
    def handled() -> int:
        return 1

    @task
    def invalid() -> None:
        raise signals.VALIDATIONFAIL("bad data")

    with Flow("retries") as flow:
        tasks = [("picky", picky()), ("retried", retried())]
        skipped = value(skip_it())
        tasks += [("skipped", skipped), ("merged", merge(skipped, value(skipped)))]
        tasks += [("filtered", FilterTask()(mixed())), ("handled", handled())]
        tasks += [("invalid", invalid())]
    state = flow.run()
    lines = _summary("retries", state, tasks)
    lines += [f"  {label} message {state.result[t].message!r}" for label, t in tasks]
    return lines + [f"  tries {tries[0]} failures {failures}"]


RETRIES_SKIPS_AND_HANDLERS = """
== retries: Failed 'Some reference tasks failed.'
  picky: Failed 'ValueError(not retried)'
  retried: Success 'ok'
  skipped: Skipped None
  merged: Skipped None
  filtered: Success [1, 2]
  handled: Failed "KeyError('handler broke')"
  invalid: ValidationFailed 'VALIDATIONFAIL(bad data)'
  picky message "Error during execution of task: ValueError('not retried')"
  retried message 'Task run succeeded.'
  skipped message 'Upstream task was skipped; if this was not the intended behavior, consider changing `skip_on_upstream_skip=False` for this task.'
  merged message 'All upstreams were skipped'
  filtered message 'Task run succeeded.'
  handled message "Unexpected error while calling state handlers: KeyError('handler broke')"
  invalid message 'bad data'
  tries 21 failures [('picky', 'Failed')]
"""

SECTIONS: list[tuple[Callable[[], list[str]], str]] = [
    (control_flow, CONTROL_FLOW),
    (mapping, MAPPING),
    (signals_and_triggers, SIGNALS_AND_TRIGGERS),
    (operators_and_classes, OPERATORS_AND_CLASSES),
    (resources_retries_handlers, RESOURCES_RETRIES_HANDLERS),
    (switches_filters_and_failures, SWITCHES_FILTERS_AND_FAILURES),
    (caching_looping_and_parameters, CACHING_LOOPING_AND_PARAMETERS),
    (executors_names_and_schedules, EXECUTORS_NAMES_AND_SCHEDULES),
    (more_triggers_and_signals, MORE_TRIGGERS_AND_SIGNALS),
    (child_retries_and_nested_maps, CHILD_RETRIES_AND_NESTED_MAPS),
    (retries_skips_and_handlers, RETRIES_SKIPS_AND_HANDLERS),
]


@pytest.fixture(autouse=True)
def _fresh_caches() -> Any:
    """Each section's runs see only their own in-memory caches (``context.caches``)."""
    with context(caches={}):
        yield


@pytest.mark.parametrize(("build", "expected"), SECTIONS, ids=[s[0].__name__ for s in SECTIONS])
def test_a_prefect1_flow_ends_as_it_does_in_prefect_1_4_1(
    build: Callable[[], list[str]], expected: str
) -> None:
    assert build() == expected.strip("\n").splitlines()


def test_a_timed_out_task_s_signal_names_the_task_and_the_limit() -> None:
    """(Prefect 1.4.1: ``TimedOut``, result ``TaskTimeoutSignal("Execution timed out.")``;
    the downstream task ``TriggerFailed``, as here.)"""

    @task(timeout=1)
    def slow() -> int:
        time.sleep(1.5)
        return 1

    with Flow("timeout") as flow:
        s = slow()
        after = inc(s)
    assert _summary(
        "timeout", flow.run(executor=LocalExecutor()), [("s", s), ("after", after)]
    ) == [
        "== timeout: Failed 'Some reference tasks failed.'",
        "  s: TimedOut \"TaskTimeoutSignal(Task 'slow' timed out after 1 seconds)\"",
        '  after: TriggerFailed \'TRIGGERFAIL(Trigger was "all_successful" but some of the '
        "upstream tasks failed.)'",
    ]


def test_cron_next_after_a_date_answers_where_prefect_1_4_1_fails_on_pendulum_3() -> None:
    schedule = CronSchedule("0 9 * * 1-5", start_date=pendulum.datetime(2021, 3, 1, tz="UTC"))
    after = pendulum.datetime(2021, 3, 5, 10, tz="UTC")
    assert [str(d) for d in schedule.next(3, after=after)] == [
        "2021-03-08 09:00:00+00:00",
        "2021-03-09 09:00:00+00:00",
        "2021-03-10 09:00:00+00:00",
    ]


def test_library_tasks_checkpoints_and_flow_edits_as_in_prefect_1_4_1(tmp_path: Path) -> None:
    assert (
        library_tasks_and_flow_edits(str(tmp_path))
        == LIBRARY_TASKS_AND_FLOW_EDITS.strip("\n").splitlines()
    )


def test_cache_validators_and_targets_as_in_prefect_1_4_1(tmp_path: Path) -> None:
    assert validators_and_targets(str(tmp_path)) == VALIDATORS_AND_TARGETS.strip("\n").splitlines()


def test_the_old_engine_executors_path_imports_the_same_classes_with_a_warning() -> None:
    """``prefect.engine.executors`` (Prefect 1's older path) still imports in 1.4.1."""
    import importlib

    import flowcore.executors

    old = importlib.import_module("flowcore.engine.executors")
    for name in ("LocalExecutor", "LocalDaskExecutor", "DaskExecutor", "Executor"):
        with pytest.warns(UserWarning, match=f"executors.{name} is Prefect 1's old place"):
            assert getattr(old, name) is getattr(flowcore.executors, name)
    with pytest.warns(UserWarning, match="import it from flowcore.executors"):
        from flowcore.engine.executors import LocalDaskExecutor
    assert LocalDaskExecutor is flowcore.executors.LocalDaskExecutor
