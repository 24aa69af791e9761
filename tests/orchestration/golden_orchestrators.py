"""Orchestrators whose recorded histories live in tests/orchestration/histories/.

Changing one of these in a way that alters what it schedules must fail its golden test: that is
exactly the mistake that breaks in-flight instances after a deploy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from durable.orchestration.context import DurableOrchestrationContext


def approval_flow(context: DurableOrchestrationContext) -> Any:
    request = context.get_input()
    ticket = yield context.call_activity("open_ticket", request["amount"])
    deadline = context.create_timer(timedelta(hours=24))
    approval = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approval, deadline])
    if winner is approval and approval.result:
        deadline.cancel()
        paid = yield context.call_activity("pay", ticket)
        return {"ticket": ticket, "paid": paid}
    return {"ticket": ticket, "paid": False}
