"""A timer app for the multi-process timer tests; configured by environment variables.

Each run of ``tick`` appends ``start <occurrence> <pid> <past_due>`` and, after an optional
delay (``TIMER_TEST_SLOW`` seconds), ``end <occurrence> <pid>`` to ``TIMER_TEST_LOG``.
"""

from __future__ import annotations

import os
import time

import durable as df

LOG = os.environ.get("TIMER_TEST_LOG", "timer-test.log")
SCHEDULE = os.environ.get("TIMER_TEST_SCHEDULE", "*/2 * * * * *")
SLOW = float(os.environ.get("TIMER_TEST_SLOW", "0"))

app = df.DFApp()


def _log(line: str) -> None:
    with open(LOG, "a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


@app.timer_trigger(arg_name="timer", schedule=SCHEDULE, use_monitor=True)
def tick(timer: df.TimerRequest) -> None:
    due = timer.schedule_status["Last"]
    _log(f"start {due} {os.getpid()} {timer.past_due}")
    if SLOW:
        time.sleep(SLOW)
    _log(f"end {due} {os.getpid()}")
