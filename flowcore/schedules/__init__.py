"""Schedules: when ``flow.run()`` runs a flow (Prefect 1's ``prefect.schedules``).

A :class:`Schedule` merges the events of its ``clocks`` (``IntervalClock``, ``CronClock``,
``DatesClock``, ``RRuleClock`` in :mod:`flowcore.schedules.clocks`), keeps those passing
its :mod:`~flowcore.schedules.filters` and shifts them with its
:mod:`~flowcore.schedules.adjustments`. ``Flow(..., schedule=...)`` plus ``flow.run()``
runs the flow at each event, each run with its own ``flow_run_id``, until the schedule
runs out or Ctrl-C; ``flow.run(run_on_schedule=False)`` runs it once now.
"""

from flowcore.schedules import adjustments, clocks, filters, schedules
from flowcore.schedules.schedules import CronSchedule, IntervalSchedule, RRuleSchedule, Schedule

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "RRuleSchedule",
    "Schedule",
    "adjustments",
    "clocks",
    "filters",
    "schedules",
]
