"""``lease_orchestrations(exclude=...)``: a poll skips the instances a worker already holds the
messages of (its episodes in flight), on every backend."""

from __future__ import annotations

import time
import uuid

from durable.storage.base import Backend, NewInstance


def new_instance(instance_id: str) -> NewInstance:
    return NewInstance(instance_id, "orch", uuid.uuid4().hex, None, time.time())


async def test_a_poll_skips_excluded_instances(backend: Backend) -> None:
    for name in ("busy-1", "busy-2", "new-1"):
        await backend.create_instance(new_instance(name))
    first = await backend.lease_orchestrations("w", limit=10, exclude=["busy-1", "busy-2"])
    assert [i.instance_id for i in first] == ["new-1"]
    # Excluding is not a lease decision: the next poll without it finds the others.
    again = await backend.lease_orchestrations("w", limit=10)
    assert sorted(i.instance_id for i in again) == ["busy-1", "busy-2", "new-1"]
    # A lease by ID ignores the poll filter.
    [by_id] = await backend.lease_orchestrations("w", limit=10, instance_ids=["busy-1"],
                                                 exclude=["busy-1"])
    assert by_id.instance_id == "busy-1"
