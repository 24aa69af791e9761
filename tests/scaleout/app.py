"""The app the scale-out tests run in real ``durable worker`` processes.

Activities record every execution (process ID, instance, step) in the file named by
``DURABLE_SCALEOUT_LOG``, one ``O_APPEND`` write per line, so a test can tell which worker ran
what and whether anything ran twice.
"""

from __future__ import annotations

import os
import time

import durable as df

app = df.DFApp()

LOG_ENV = "DURABLE_SCALEOUT_LOG"


def record(kind: str, instance_id: str, step: int) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = f"{os.getpid()} {kind} {instance_id} {step}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    """``[steps, pause]`` -> 1 + 2 + ... + steps, one activity per step."""
    steps, pause = context.get_input()
    total = 0
    for step in range(steps):
        total = yield context.call_activity("add", [context.instance_id, step, total, pause])
    return total


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    """``[width, pause]`` -> 0² + 1² + ... + (width-1)², all activities at once."""
    width, pause = context.get_input()
    squares = yield context.task_all(
        [context.call_activity("square", [context.instance_id, i, pause]) for i in range(width)]
    )
    return sum(squares)


@app.orchestration_trigger(context_name="context")
def hold(context: df.DurableOrchestrationContext):
    """Records one run, then waits for the ``release`` event (a long-running singleton)."""
    yield context.call_activity("add", [context.instance_id, 0, 0, 0])
    released = yield context.wait_for_external_event("release")
    return released


@app.activity_trigger(input_name="args")
def add(args: list) -> int:
    instance_id, step, total, pause = args
    record("add", instance_id, step)
    if pause:
        time.sleep(pause)
    return total + step + 1


@app.activity_trigger(input_name="args")
def square(args: list) -> int:
    instance_id, index, pause = args
    record("square", instance_id, index)
    if pause:
        time.sleep(pause)
    return index * index


def expected_output(name: str, size: int) -> int:
    if name == "chain":
        return size * (size + 1) // 2
    return sum(i * i for i in range(size))



@app.entity_trigger(context_name="context")
def tally(context: df.DurableEntityContext):
    """A counter: ``add`` n, ``get``."""
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    context.set_state(value)
    context.set_result(value)


@app.orchestration_trigger(context_name="context")
def tally_up(context: df.DurableOrchestrationContext):
    """``[key, times]``: add 1 to tally ``key`` that many times, one call after another."""
    key, times = context.get_input()
    for _ in range(times):
        yield context.call_entity(df.EntityId("tally", key), "add", 1)
    return times
