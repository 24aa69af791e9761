"""Commits of an execution that no longer exists must not land on its successor."""

from __future__ import annotations

import time

from durable.history import ExecutionStarted, OrchestratorStarted
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage import open_backend
from durable.storage.base import NewInstance, OrchestrationCommit


async def test_a_late_commit_of_a_purged_execution_is_refused(db_url: str) -> None:
    backend = open_backend(db_url)
    await backend.open()
    try:
        now = time.time()
        old = NewInstance("reused", "orch", "execution-old", '"first"', now)
        item = await backend.create_instance(old, lease_owner="worker-1", lease_seconds=30)
        assert item is not None
        await backend.purge_instance("reused")
        new = NewInstance("reused", "orch", "execution-new", '"second"', now)
        await backend.create_instance(new, lease_owner="worker-1", lease_seconds=30)

        # The worker's episode for the purged execution commits only now.
        late = OrchestrationCommit(
            instance_id="reused",
            execution_id="execution-old",
            revision=item.revision,
            lease_owner="worker-1",
            history=[
                OrchestratorStarted(timestamp=now),
                ExecutionStarted(timestamp=now, name="orch", instance_id="reused",
                                 execution_id="execution-old", input='"first"'),
            ],
            status=Status.Running,
            consumed_messages=[m.message_id for m in item.messages],
        )
        [outcome] = await backend.commit_orchestrations([late])
        record = await backend.get_instance("reused")
        history = await backend.get_history("reused")
    finally:
        await backend.close()

    assert record is not None and record.execution_id == "execution-new"
    assert outcome.ok is False
    assert history == []
