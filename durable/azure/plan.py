"""Placing the SDK's actions under the task IDs the SDK gave them, and the work a Durable
Functions host does on the SDK's behalf (retry timers and re-attempts).

Task IDs. The SDK keys completions by sequence numbers it assigns itself and never reports:
one per task when first yielded (children of ``task_all``/``task_any`` in list order), one per
``signal_entity``/``continue_as_new`` call, none for external events (keyed by name), plus one
per retry timer and per re-attempt, taken when the failure (or the retry timer) is processed.
Without retries the IDs are just the order of the numbered actions in the cumulative action
list. With retries :class:`_Simulation` replays the history the way the SDK does (the same
events, in the same order, completing the same kinds of tasks) to find where the retry IDs
fall, which is what the Durable extension's own replay does too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from durable.azure.protocol import ActionType, ProtocolError
from durable.history import (
    EventRaised,
    EventSent,
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)

_RETRIES = (ActionType.CallActivityWithRetry, ActionType.CallSubOrchestratorWithRetry)
_COMPOUND = (ActionType.WhenAny, ActionType.WhenAll)
_FIRE_AND_FORGET = (ActionType.ContinueAsNew, ActionType.SignalEntity)
# Actions that take a sequence number (everything atomic but external events).
_NUMBERED = frozenset(ActionType) - {ActionType.WaitForExternalEvent, *_COMPOUND}


@dataclass(slots=True)
class Work:
    """One piece of work the host owes the orchestration, under the SDK's task ID.

    ``action`` is the SDK's atomic action (for retries: the with-retry action). ``retry`` is
    None for the action itself, ``"timer"`` for a retry delay and ``"attempt"`` for a retry's
    next attempt; ``fire_at`` is the retry timer's due time.
    """

    task_id: int
    action: dict[str, Any]
    retry: str | None = None
    fire_at: float | None = None
    kind: ActionType = field(init=False)

    def __post_init__(self) -> None:
        self.kind = _action_type(self.action)


@dataclass(slots=True)
class Plan:
    work: list[Work] = field(default_factory=list)
    in_sync: bool = True  # False: the simulation could not follow the SDK (see plan_work)
    next_id: int = 0  # the task ID the SDK's next numbered action will take


def _flatten(actions: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for action in actions:
        kind = _action_type(action)
        if kind in _COMPOUND:
            yield from _flatten(action.get("compoundActions") or [])
        else:
            yield action


_ACTION_TYPES: dict[Any, ActionType] = {
    **{kind.value: kind for kind in ActionType}, **{kind.name: kind for kind in ActionType}}


def _action_type(action: dict[str, Any]) -> ActionType:
    raw = action.get("actionType")
    kind = _ACTION_TYPES.get(raw) if isinstance(raw, int | str) else None
    if kind is None:
        raise ProtocolError(f"Unknown action type {raw!r}.")
    return kind


def retry_interval(action: dict[str, Any]) -> float:
    options = action.get("retryOptions") or {}
    return max(0.0, float(options.get("firstRetryIntervalInMilliseconds") or 0) / 1000.0)


def retry_attempts(action: dict[str, Any]) -> int:
    options = action.get("retryOptions") or {}
    return max(1, int(options.get("maxNumberOfAttempts") or 1))


def has_retries(actions: list[dict[str, Any]]) -> bool:
    return any(_action_type(a) in _RETRIES for a in _flatten(actions))


def plan_work(actions: list[dict[str, Any]], history: Sequence[HistoryEvent],
              first_id: int | None = None) -> Plan:
    """Every piece of work the SDK's actions call for, under the task IDs the SDK assigned.

    ``history`` is what the SDK was shown this time (new events included), in that order.
    ``first_id``: when ``actions`` are only the newest ones (none of them retries), the task
    ID of the first numbered one; None for the cumulative list.
    """
    if first_id is not None or not has_retries(actions):
        plan = Plan(next_id=first_id or 0)
        for action in _flatten(actions):
            if _action_type(action) in _NUMBERED:
                plan.work.append(Work(plan.next_id, action))
                plan.next_id += 1
        return plan
    return _Simulation(actions).run(history)


# -- the retry-aware replay ---------------------------------------------------------------------

_RUNNING, _SUCCEEDED, _FAILED = 0, 1, 2


class _Node:
    """A task as the SDK models it: atomic, external event, all/any, or with-retry."""

    __slots__ = ("action", "attempts", "children", "kind", "parent", "pending", "state",
                 "waiting_timer")

    def __init__(self, kind: ActionType, action: dict[str, Any], parent: _Node | None) -> None:
        self.kind = kind
        self.action = action
        self.parent = parent
        self.state = _RUNNING
        self.children: list[_Node] = []
        self.pending = 0
        self.attempts = 1
        self.waiting_timer = False


class _Simulation:
    """Replays history over the action list as the SDK does, to place the retry IDs.

    As in the SDK, a yielded task's tree is built first and its atomic tasks then take their
    IDs depth-first; a completion that arrived before its task was yielded is applied when the
    task takes its ID (and an external event raised before anyone waited completes every later
    wait on that name, the SDK's behaviour).
    """

    def __init__(self, actions: list[dict[str, Any]]) -> None:
        self._actions = actions
        self._cursor = 0
        self._current: _Node | None = None
        self._registering = False
        self._next_id = 0
        self._now = 0.0
        self._open: dict[int, _Node] = {}
        self._deferred: dict[int, bool] = {}
        self._waiters: dict[str, list[_Node]] = {}
        self._raised: set[str] = set()
        self._calls: dict[str, _Node] = {}  # entity calls by request ID
        self._plan = Plan()

    def run(self, history: Sequence[HistoryEvent]) -> Plan:
        for event in history:
            if isinstance(event, OrchestratorStarted):
                self._now = max(self._now, event.timestamp)
            elif isinstance(event, ExecutionStarted):
                self._advance()
            elif isinstance(event, TaskCompleted | SubOrchestrationInstanceCompleted):
                self._complete_id(event.task_scheduled_id, True)
            elif isinstance(event, TaskFailed | SubOrchestrationInstanceFailed):
                self._complete_id(event.task_scheduled_id, False)
            elif isinstance(event, TimerFired):
                self._complete_id(event.timer_id, True)
            elif isinstance(event, EventSent):
                self._sent(event)
            elif isinstance(event, EventRaised):
                self._raise(event.name, event.input)
        if self._cursor < len(self._actions):
            # The SDK went further than we could follow (e.g. it waits on a task it yielded
            # before, which the action list does not show). Number the rest in order.
            self._plan.in_sync = False
            while self._cursor < len(self._actions):
                self._register(self._build(self._actions[self._cursor], None))
                self._cursor += 1
        self._plan.next_id = self._next_id
        return self._plan

    def _advance(self) -> None:
        """The SDK yields the next action once the one it waits on has completed."""
        while self._cursor < len(self._actions):
            action = self._actions[self._cursor]
            self._cursor += 1
            node = self._build(action, None)
            if _action_type(action) in _FIRE_AND_FORGET:
                self._register(node)
                continue
            self._current = node
            self._registering = True
            try:
                self._register(node)
            finally:
                self._registering = False
            if node.state == _RUNNING:
                return

    def _build(self, action: dict[str, Any], parent: _Node | None) -> _Node:
        kind = _action_type(action)
        node = _Node(kind, action, parent)
        if kind in _COMPOUND:
            node.children = [self._build(child, node)
                             for child in action.get("compoundActions") or []]
            node.pending = len(node.children)
            if not node.children:
                node.state = _SUCCEEDED
        elif kind in _RETRIES:
            node.children = [_Node(kind, action, node)]
            node.pending = 1
        return node

    def _register(self, node: _Node) -> None:
        kind = node.kind
        if kind in _COMPOUND or (kind in _RETRIES and node.children):
            for child in list(node.children):
                self._register(child)
        elif kind is ActionType.WaitForExternalEvent:
            name = str(node.action.get("externalEventName"))
            if name in self._raised:
                self._finish(node, True)
            else:
                self._waiters.setdefault(name, []).append(node)
        elif kind in _FIRE_AND_FORGET:
            self._plan.work.append(Work(self._next_id, node.action))
            self._next_id += 1
            node.state = _SUCCEEDED
        else:
            self._take_id(node, Work(self._next_id, node.action))

    def _take_id(self, node: _Node, work: Work) -> None:
        self._next_id += 1
        self._open[work.task_id] = node
        self._plan.work.append(work)
        deferred = self._deferred.pop(work.task_id, None)
        if deferred is not None:
            self._complete_id(work.task_id, deferred)

    def _complete_id(self, task_id: int, ok: bool) -> None:
        node = self._open.pop(task_id, None)
        if node is None:
            self._deferred[task_id] = ok
            return
        self._finish(node, ok)

    def _sent(self, event: EventSent) -> None:
        """An entity call's EventSent: the SDK re-keys its task by the request ID."""
        node = self._open.get(event.event_id)
        if node is None or node.kind is not ActionType.CallEntity:
            return
        try:
            request_id = json.loads(event.input or "null")["id"]
        except (ValueError, TypeError, KeyError):
            return
        del self._open[event.event_id]
        self._calls[str(request_id)] = node

    def _raise(self, name: str, payload: str | None = None) -> None:
        call = self._calls.pop(name, None)
        if call is not None:
            try:
                failed = "exceptionType" in json.loads(payload or "null")
            except (ValueError, TypeError):
                failed = False
            self._finish(call, not failed)
            return
        waiters = self._waiters.get(name)
        if waiters:
            self._finish(waiters.pop(), True)
        else:
            self._raised.add(name)

    def _finish(self, node: _Node, ok: bool) -> None:
        if node.state != _RUNNING:
            return
        node.state = _SUCCEEDED if ok else _FAILED
        parent = node.parent
        if parent is not None:
            self._child_done(parent, node)
        elif node is self._current and not self._registering:
            self._advance()

    def _child_done(self, parent: _Node, child: _Node) -> None:
        if parent.kind in _RETRIES:
            self._retry_step(parent, child)
            return
        if parent.state != _RUNNING:
            return
        parent.pending -= 1
        if parent.kind is ActionType.WhenAny:
            self._finish(parent, True)
        elif child.state == _FAILED:
            self._finish(parent, False)
        elif parent.pending <= 0:
            self._finish(parent, True)

    def _retry_step(self, retry: _Node, child: _Node) -> None:
        if retry.state != _RUNNING:
            return
        action = retry.action
        if retry.waiting_timer:
            retry.waiting_timer = False
            if retry.attempts >= retry_attempts(action):
                self._finish(retry, False)
                return
            retry.attempts += 1
            attempt = _Node(ActionType.CallActivity, action, retry)
            self._take_id(attempt, Work(self._next_id, action, retry="attempt"))
            return
        if child.state == _SUCCEEDED:
            self._finish(retry, True)
            return
        # A failed attempt: a timer before the next one (due at once after the last attempt,
        # as the Durable Task Framework's retry interceptor schedules it).
        delay = 0.0 if retry.attempts >= retry_attempts(action) else retry_interval(action)
        timer = _Node(ActionType.CreateTimer, action, retry)
        retry.waiting_timer = True
        self._take_id(timer, Work(self._next_id, action, retry="timer",
                                  fire_at=self._now + delay))


__all__ = ["Plan", "Work", "has_retries", "plan_work", "retry_attempts", "retry_interval"]
