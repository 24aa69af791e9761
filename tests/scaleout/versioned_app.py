"""The app of the rolling-upgrade test, in the version ``SCALEOUT_APP_VERSION`` names.

Version 1.0 and 2.0 of one orchestrator: 2.0 adds a step. Workers run with the
``current-or-older`` match strategy, so a 1.0 worker leaves 2.0 instances alone and a 2.0
worker runs both. Every activity records the process and the version that ran it.
"""

from __future__ import annotations

import os

import durable as df
from tests.scaleout.app import record

VERSION = os.environ.get("SCALEOUT_APP_VERSION", "1.0")
app = df.DFApp(default_version=VERSION, version_match_strategy="current-or-older")


@app.orchestration_trigger(context_name="context")
def upgrade(context: df.DurableOrchestrationContext):
    """Wait for "go", then one step (1.0) or two (2.0, as the instance's version says)."""
    yield context.call_activity("step", [context.instance_id, 0])
    yield context.wait_for_external_event("go")
    steps = 2 if context.version == "2.0" else 1
    for step in range(1, steps + 1):
        yield context.call_activity("step", [context.instance_id, step])
    return [context.version, steps]


@app.activity_trigger(input_name="args")
def step(args: list) -> str:
    instance_id, number = args
    record(f"v{VERSION}", instance_id, number)
    return VERSION
