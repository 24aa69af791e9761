"""The worker's side of versioning: may this worker run this instance's version?

See :mod:`durable.versioning` for the model. An instance this worker may not run is either
left for another worker (``reject``: its lease is given back at once and polls skip it for a
while, so a worker that can run it takes it) or failed (``fail``) with
:class:`~durable.errors.VersionMismatchError`.
"""

from __future__ import annotations

import logging

from durable.clock import Clock
from durable.errors import VersionMismatchError
from durable.storage.base import ActivityWorkItem, OrchestrationWorkItem
from durable.versioning import VersionFailure, VersionMatch, can_run

log = logging.getLogger("durable.worker")

REJECT_SECONDS = 5.0  # how long polls skip an instance this worker left for another


class VersionGate:
    def __init__(self, version: str | None, match: VersionMatch, failure: VersionFailure,
                 clock: Clock) -> None:
        self.version = version
        self.match = match
        self.failure = failure
        self._clock = clock
        self._rejected: dict[str, float] = {}  # instance ID -> until when polls skip it

    def runs(self, item: OrchestrationWorkItem) -> bool:
        return item.is_entity or can_run(item.version, self.version, self.match)

    def runs_task(self, task: ActivityWorkItem) -> bool:
        """May this worker run an activity of an orchestration of ``task.version``? Code of
        a version it does not run may lack the activity or change what it does."""
        return can_run(task.version, self.version, self.match)

    def mismatch(self, item: OrchestrationWorkItem) -> VersionMismatchError:
        return VersionMismatchError(item.instance_id, item.version, self.version,
                                    self.match.value)

    def reject(self, item: OrchestrationWorkItem) -> None:
        if item.instance_id not in self._rejected:
            log.info("instance %s is version %s; this worker runs %s (%s): left for another "
                     "worker", item.instance_id, item.version or "(none)",
                     self.version or "(none)", self.match.value)
        self._rejected[item.instance_id] = self._clock.now() + REJECT_SECONDS

    def skipped(self) -> list[str]:
        """Instances polls should leave alone for now."""
        if not self._rejected:
            return []
        now = self._clock.now()
        for instance_id in [i for i, until in self._rejected.items() if until <= now]:
            del self._rejected[instance_id]
        return list(self._rejected)

    def is_rejected(self, instance_id: str) -> bool:
        until = self._rejected.get(instance_id)
        return until is not None and until > self._clock.now()
