"""``lease_orchestrations(max_messages=...)``: a lease reads at most that many messages per
instance, the first ones in due order, and says when more are waiting; the next lease after the
commit reads the following ones. Run against every backend (the ``backend`` fixture)."""

from __future__ import annotations

import time

from durable.history import EventRaised
from durable.storage.base import Backend, Message
from tests.storage.test_backend_contract import OWNER, episode_commit, start_running


async def send(backend: Backend, instance_id: str, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        await backend.send_message(
            Message(instance_id, EventRaised(timestamp=time.time(), name="e", input=str(index)))
        )


def inputs(item: object) -> list[str]:
    return [m.event.input for m in item.messages]  # type: ignore[attr-defined]


async def test_a_capped_lease_reads_the_first_messages_and_says_more_wait(
    backend: Backend,
) -> None:
    await start_running(backend, "hot")
    await start_running(backend, "cold")
    await send(backend, "hot", 7)
    await send(backend, "cold", 2)
    items = await backend.lease_orchestrations(OWNER, limit=10, instance_ids=["cold", "hot"],
                                               max_messages=3)
    by_id = {item.instance_id: item for item in items}
    assert inputs(by_id["hot"]) == ["0", "1", "2"] and by_id["hot"].more_messages
    assert inputs(by_id["cold"]) == ["0", "1"] and not by_id["cold"].more_messages
    # Committing what was read leaves the rest, in order, for the next lease.
    seen = inputs(by_id["hot"])
    item = by_id["hot"]
    while item.more_messages:
        record = await backend.get_instance("hot")
        assert record is not None
        [outcome] = await backend.commit_orchestrations(
            [episode_commit(item, revision=record.revision)])
        assert outcome.ok
        [item] = await backend.lease_orchestrations(OWNER, limit=10, instance_ids=["hot"],
                                                    max_messages=3)
        seen += inputs(item)
    assert seen == [str(index) for index in range(7)]


async def test_a_capped_poll_reads_at_most_the_cap_per_instance(backend: Backend) -> None:
    await start_running(backend, "polled")
    await send(backend, "polled", 4)
    [item] = await backend.lease_orchestrations(OWNER, limit=10, max_messages=4)
    # Exactly the cap: nothing more is waiting.
    assert inputs(item) == ["0", "1", "2", "3"] and not item.more_messages
    uncapped = await backend.lease_orchestrations(OWNER, limit=10)
    assert [inputs(i) for i in uncapped] == [["0", "1", "2", "3"]]
    assert not uncapped[0].more_messages
