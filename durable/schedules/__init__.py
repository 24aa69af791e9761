"""Timer triggers: NCRONTAB schedules (:mod:`.ncrontab`) and the scheduler (:mod:`.timers`).

A timer function (``@app.timer_trigger(schedule=..., arg_name=...)``) fires once per occurrence
across every worker of a task hub; docs/azure-apps.md ("Timer triggers") says how.
"""

from durable.schedules.ncrontab import ScheduleError, parse_schedule

__all__ = ["ScheduleError", "parse_schedule"]
