"""The instances a worker owns: their live runtimes, newest last (LRU)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from durable.history import ExecutionStarted, HistoryEvent
from durable.orchestration.actions import Decision
from durable.storage.base import ActivityResult, InboxEntry, OrchestrationWorkItem


class Runtime(Protocol):
    """What the worker drives per instance: an orchestration's replay engine
    (:class:`~durable.orchestration.runtime.OrchestrationRuntime`) or an entity's executor
    (:class:`~durable.orchestration.entity_runtime.EntityRuntime`)."""

    @property
    def started(self) -> ExecutionStarted | None: ...

    @property
    def is_done(self) -> bool: ...

    def replay(self, history: Iterable[HistoryEvent]) -> None: ...

    def run_episode(self, new_events: Iterable[HistoryEvent], now: float) -> Decision: ...


@dataclass(slots=True, eq=False)
class OwnedInstance:
    """An instance this worker leases and caches."""

    instance_id: str
    execution_id: str
    revision: int
    runtime: Runtime
    busy: bool = False  # an episode of it is being committed
    local: list[ActivityResult] = field(default_factory=list)  # results for its next episode
    # Messages our own commits sent it, handed over in memory for its next episode (they are
    # in its inbox too; the episode's commit deletes them). See Committing._hand_over.
    inbox: list[InboxEntry] = field(default_factory=list)
    inbox_behind: bool = False  # its last lease left messages in the inbox (more_messages)
    previous_execution_id: str | None = None  # before the last continue_as_new

    @property
    def has_pending(self) -> bool:
        """Activity results or messages in hand for its next episode."""
        return bool(self.local or self.inbox)


class InstanceCache:
    """Owned instances by ID, plus the last revision seen of recently dropped ones.

    ``revisions`` is what the worker passes to ``lease_orchestrations`` so storage sends
    history only for instances the worker does not hold at that revision.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._owned: OrderedDict[str, OwnedInstance] = OrderedDict()
        self.revisions: dict[str, int] = {}
        self._dropped: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._owned)

    def __iter__(self) -> Iterator[OwnedInstance]:
        return iter(list(self._owned.values()))

    def get(self, instance_id: str) -> OwnedInstance | None:
        return self._owned.get(instance_id)

    def is_busy(self, instance_id: str) -> bool:
        owned = self._owned.get(instance_id)
        return owned is not None and owned.busy

    def remember(self, owned: OwnedInstance) -> None:
        self._owned[owned.instance_id] = owned
        self.revisions[owned.instance_id] = owned.revision

    def committed(self, owned: OwnedInstance, revision: int) -> None:
        owned.revision = revision
        self.revisions[owned.instance_id] = revision

    def touch(self, instance_id: str) -> None:
        self._owned.move_to_end(instance_id)

    def forget(self, instance_id: str) -> OwnedInstance | None:
        owned = self._owned.pop(instance_id, None)
        self.revisions.pop(instance_id, None)
        if owned is not None:
            # The last revision we saw, never more than storage has: lets stale work items
            # for the instance be told apart from new ones (see was_dropped_after).
            self._dropped[instance_id] = (owned.execution_id, owned.revision)
            self._dropped.move_to_end(instance_id)
            if len(self._dropped) > max(1000, self.capacity):
                self._dropped.popitem(last=False)
        return owned

    def was_dropped_after(self, item: OrchestrationWorkItem) -> bool:
        """True if ``item`` was read before a commit of ours that since finished or evicted
        the instance: running it would only repeat that episode and fail the fence."""
        last = self._dropped.get(item.instance_id)
        return last is not None and last[0] == item.execution_id and item.revision < last[1]

    def evictable(self) -> list[str]:
        """Least recently used idle instances beyond the capacity."""
        excess = len(self._owned) - self.capacity
        evicted: list[str] = []
        for instance_id, owned in self._owned.items():
            if len(evicted) >= excess:
                break
            if not owned.busy and not owned.has_pending:
                evicted.append(instance_id)
        return evicted

    def clear(self) -> None:
        self._owned.clear()
        self.revisions.clear()
