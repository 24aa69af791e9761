"""Committing episodes and what follows: fences, refusals, hand-overs, activity results.

Part of :class:`durable.worker.Worker` (a mixin over its state): a batch of episodes is
committed in one call (retried one by one if the batch raises, so the others still land); a
commit whose fence failed drops the cached state and re-delivers activity results through the
inbox; a refused commit costs its own instance a strike; a landed one hands the activities it
claimed to the executor, wakes the instances it sent messages to, and remembers its timers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from durable.errors import FailureDetails, StorageError
from durable.storage.base import ActivityResult, ActivityWorkItem, CommitOutcome, InboxEntry
from durable.telemetry import observe_commit
from durable.worker.commits import give_back_claims
from durable.worker.episodes import Episode
from durable.worker.poison import failure_of
from durable.worker.state import WorkerState

if TYPE_CHECKING:
    pass

log = logging.getLogger("durable.worker")


class Committing(WorkerState):
    """The commit half of the worker."""

    async def _commit(self, episodes: list[Episode]) -> None:
        self._claims_planned -= sum(
            task.claimed for episode in episodes for task in episode.commit.new_tasks
        )
        began = time.perf_counter()
        with self._in_flight.holding([r for episode in episodes for r in episode.delivered]):
            outcomes = await self._commit_batch(episodes)
        if self.observer is not None:
            observe_commit(self.observer, episodes, outcomes, time.perf_counter() - began)
        self.stats["commits"] += 1
        claimed: list[ActivityWorkItem] = []
        sent: list[tuple[str, InboxEntry]] = []
        for episode, outcome in zip(episodes, outcomes, strict=True):
            owned = episode.owned
            owned.busy = False
            self._busy_count -= 1
            if outcome.error is not None:
                self._refused(episode, outcome.error)
                continue
            if outcome.behind:
                self._behind(episode)
                continue
            if not outcome.ok:
                self._lease_lost(episode)
                continue
            if self._strikes:
                self._strikes.clear(owned.instance_id)
            self.stats["parked"] += episode.parked
            self._after_commit(episode, outcome, claimed, sent)
        if sent:
            self._hand_over(sent)
        if claimed:
            self.stats["activities"] += len(claimed)
            self.executor.submit(claimed)
        self._evict_if_needed()
        self._wake.set()

    async def _commit_batch(self, episodes: list[Episode]) -> list[CommitOutcome]:
        """Commit ``episodes`` together; if the batch raises for a reason other than an
        outage, nothing of it was written, and each episode is committed on its own so that
        one bad commit cannot hold back the others."""
        commits = [e.commit for e in episodes]
        try:
            return await self.backend.commit_orchestrations(
                commits, lease_seconds=self.options.lease_seconds
            )
        except StorageError as exc:
            log.error("committing %d episodes failed: %s", len(episodes), exc)
            failed = [CommitOutcome(False)] * len(episodes)
        except Exception as exc:
            if len(episodes) > 1:
                log.warning("a batch of %d commits failed (%s: %s); committing them one by "
                            "one", len(episodes), type(exc).__name__, exc)
                parts = await asyncio.gather(*(self._commit_batch([e]) for e in episodes))
                return [outcome for part in parts for outcome in part]
            self._struck(episodes[0].owned.instance_id,
                         failure_of(exc, "committing an episode"), deterministic=False,
                         exc=exc)
            failed = [CommitOutcome(False)]
        await give_back_claims(self.backend, self.id, commits, self.options.poll_interval,
                               lambda: self._stopping)
        return failed

    def _refused(self, episode: Episode, error: str) -> None:
        """Storage refused this commit's values: fail the instance (nothing was written)."""
        self._lease_lost(episode, quiet=True)
        cause = FailureDetails("durable.errors.SerializationError",
                               f"committing an episode: {error}")
        self._struck(episode.owned.instance_id, cause, deterministic=True)

    def _after_commit(
        self, episode: Episode, outcome: CommitOutcome, claimed: list[ActivityWorkItem],
        sent: list[tuple[str, InboxEntry]],
    ) -> None:
        owned, decision, commit = episode.owned, episode.decision, episode.commit
        self._cache.committed(owned, outcome.revision)
        for task in commit.new_tasks:
            if task.claimed:
                claimed.append(
                    ActivityWorkItem(owned.instance_id, owned.execution_id, task.task_id,
                                     task.name, task.input)
                )
            elif not self._left_unclaimed:
                self._left_unclaimed = True  # poll for them as soon as there is room
                self._poll_soon.set()
        ids = outcome.message_ids
        for index, message in enumerate(commit.messages):
            if message.visible_at is not None:
                self._timers.add(message.visible_at, message.instance_id)
            elif message.instance_id != owned.instance_id:
                message_id = ids[index] if ids is not None else None
                if message_id is None:
                    self.hint(message.instance_id)
                else:
                    entry = InboxEntry(message_id, message.event, message.execution_id)
                    sent.append((message.instance_id, entry))
        for child in commit.new_instances:
            self.hint(child.instance_id)
        if decision.continue_as_new is not None and commit.continue_as_new is not None:
            fresh = self._new_runtime(owned.runtime.started.name if owned.runtime.started else "")
            if fresh is None:
                self._forget(owned.instance_id)
            else:
                owned.runtime = fresh
                owned.previous_execution_id = owned.execution_id
                owned.execution_id = commit.continue_as_new.execution_id
            self.hint(owned.instance_id)
        elif decision.status.is_terminal:
            self._forget(owned.instance_id)
            self._finish_waiters.finished(owned.instance_id)
        if owned.local:
            self._with_local.add(owned.instance_id)
        if episode.more_messages:
            self.hint(owned.instance_id)  # the rest of its inbox, now that these are gone

    def _hand_over(self, sent: list[tuple[str, InboxEntry]]) -> None:
        """Give messages our commits just sent to instances this worker holds straight to
        their next episode, instead of leasing them and reading the messages back.

        The messages are in the inbox too (the commit wrote them), and the episode's commit
        deletes them, so a crash or a lost lease loses nothing. Only an instance that is
        quiet gets a message this way: held, and no lease of it wanted, in flight or waiting
        to run, nor messages left behind by its last lease; otherwise an older message could
        still be on its way through the inbox, and the message goes that way too (a hint).
        Even so an older message can be waiting (sent by another process, or by one of our
        instances before it moved here): the commit then fails its order check
        (``OrchestrationCommit.handed_up_to``) and the instance is read again in order."""
        waiting = {item.instance_id for item in self._accepted}
        for target, entry in sorted(sent, key=lambda pair: pair[1].message_id):
            owned = self._cache.get(target)
            if (owned is None or owned.inbox_behind or target in self._hinted
                    or target in self._leasing or target in waiting):
                self.hint(target)
                continue
            owned.inbox.append(entry)
            self._with_local.add(target)
            self.stats["handed_over"] += 1

    def _behind(self, episode: Episode) -> None:
        """An older message waits in the inbox of an instance that ran on messages handed
        over in memory: nothing was written; drop its state and read it again, in order."""
        self.stats["behind"] += 1
        log.debug("%s has older messages waiting; reading it again", episode.owned.instance_id)
        self._lease_lost(episode, quiet=True)
        self.hint(episode.owned.instance_id)

    def _lease_lost(self, episode: Episode, quiet: bool = False) -> None:
        """The fence failed: drop our copy and re-deliver finished activities via the inbox."""
        owned = episode.owned
        if not quiet:
            self.stats["lease_lost"] += 1
            log.warning("lost the lease of %s; discarding its cached state", owned.instance_id)
        pending = episode.delivered + owned.local
        owned.local = []
        self._forget(owned.instance_id)
        if pending:
            self._to_inbox.extend(pending)
            self._wake.set()

    def _on_activity_results(self, results: list[ActivityResult]) -> None:
        for result in results:
            owned = self._cache.get(result.task.instance_id)
            if owned is not None and owned.execution_id == result.task.execution_id:
                owned.local.append(result)
                self._with_local.add(owned.instance_id)
            else:
                self._to_inbox.append(result)
        if self._left_unclaimed:
            self._poll_soon.set()  # room again for activities we left unclaimed
        self._wake.set()

    async def _deliver_to_inbox(self, results: list[ActivityResult]) -> None:
        with self._in_flight.holding(results):  # their task leases are renewed meanwhile
            try:
                await self.backend.complete_activities(self.id, results)
            except Exception as exc:
                # Keep them and try again: this worker still leases the tasks (and renews
                # those leases), so no one else would run them before the leases lapse.
                log.warning("delivering %d activity results failed (%s); retrying in %.1fs",
                            len(results), exc, self.options.poll_interval)
                await asyncio.sleep(self.options.poll_interval)
                self._to_inbox.extend(results)
                self._wake.set()
                return
        for result in results:
            self.hint(result.task.instance_id)

    def _forget(self, instance_id: str) -> None:
        self._cache.forget(instance_id)
        self._with_local.discard(instance_id)
        if self._finish_waiters:
            # Waiters that relied on our holding it (Worker.owns) poll from now on.
            self._finish_waiters.wake(instance_id)

    def _evict_if_needed(self) -> None:
        evicted = self._cache.evictable()
        for instance_id in evicted:
            self._forget(instance_id)
        if evicted:
            self._spawn(self.backend.release_orchestrations(self.id, evicted))
