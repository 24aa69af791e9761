"""The asynchronous 202 pattern for the SDK's ``call_http``, done by the host, out of its sight.

The SDK models ``call_http`` as one task (a ``CallHttp`` action, answered by one completion).
Durable Functions documents that a ``202 Accepted`` with a ``Location`` header is followed:
the host waits (``Retry-After``, else 30 s), GETs the location, and so on until an answer is
not a 202; the orchestrator sees only that answer. (On Azure the 1.x Python SDK never asks the
Durable extension to do this, so it gets the 202 itself: Azure/azure-functions-durable-python
#380; docs/azure-apps.md says why durable follows the documented behaviour instead.)

:class:`HttpPolls` keeps, per SDK ``call_http`` task, the chain of timers and GETs that follow
its 202s. They are ordinary durable work (a timer, then the built-in HTTP activity) recorded in
durable's history under task IDs of their own, from :data:`POLL_BASE` up, which the SDK's own
sequence numbers never reach; the SDK is shown only the final answer, re-addressed to its task.
Which chain a polling timer or GET belongs to is not stored: a chain asks for its next step when
an answer or a timer arrives, and steps are created in the order they were asked for, so a cold
replay, reading the same history in the same order, pairs them up the same way.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from durable.history import (
    HistoryEvent,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable.orchestration.actions import Action, ScheduleActivity, ScheduleTimer
from durable.orchestration.http_task import HTTP_ACTIVITY_NAME, next_poll, poll_headers

POLL_BASE = 1 << 30  # below 2**31: task IDs are 32-bit integers in PostgreSQL


class HttpPolls:
    """The polling chains of one orchestration execution (see the module docstring)."""

    def __init__(self) -> None:
        self._owner: dict[int, int] = {}  # polling timer / GET task ID -> the SDK's task ID
        self._uri: dict[int, str] = {}  # SDK task ID -> the URI its latest request went to
        self._headers: dict[int, dict[str, str]] = {}  # SDK task ID -> headers of its GETs
        self._next: dict[int, tuple[str, float]] = {}  # SDK task ID -> (URI, wait) asked for
        self._want_timer: deque[int] = deque()
        self._want_get: deque[int] = deque()
        self._next_id = POLL_BASE

    def scheduled(self, event: TaskScheduled | TimerCreated) -> None:
        """A scheduling event entered history (this episode's, or a replayed one)."""
        task_id = event.event_id
        if task_id < POLL_BASE:
            if isinstance(event, TaskScheduled) and event.name == HTTP_ACTIVITY_NAME:
                request = _json(event.input)
                if isinstance(request, dict):
                    self._uri[task_id] = str(request.get("uri"))
                    self._headers[task_id] = poll_headers(request.get("headers") or {})
            return
        self._next_id = max(self._next_id, task_id + 1)
        queue = self._want_timer if isinstance(event, TimerCreated) else self._want_get
        if not queue:
            return  # not one of ours (history this code did not write): leave it alone
        owner = queue.popleft()
        self._owner[task_id] = owner
        if isinstance(event, TaskScheduled):
            self._uri[owner] = str((_json(event.input) or {}).get("uri"))

    def shown(self, event: HistoryEvent, now: float) -> HistoryEvent | None:
        """What the SDK is shown for a delivered event: the event itself, the final answer
        re-addressed to the SDK's task, or None while the chain goes on."""
        if not self._uri:
            return event  # no call_http in this execution
        if isinstance(event, TimerFired):
            owner = self._owner.get(event.timer_id)
            if owner is None:
                return event
            self._want_get.append(owner)
            return None
        if not isinstance(event, TaskCompleted | TaskFailed):
            return event
        task_id = event.task_scheduled_id
        owner = self._owner.get(task_id, task_id)
        if owner not in self._uri:
            return event  # not a call_http
        if isinstance(event, TaskCompleted):
            poll = next_poll(self._uri[owner], _json(event.result), now)
            if poll is not None:
                self._next[owner] = poll
                self._want_timer.append(owner)
                return None
            if owner != task_id:
                return TaskCompleted(timestamp=event.timestamp, task_scheduled_id=owner,
                                     result=event.result)
            return event
        if owner != task_id:
            return TaskFailed(timestamp=event.timestamp, task_scheduled_id=owner,
                              failure=event.failure)
        return event

    def work(self, now: float) -> list[tuple[Action, HistoryEvent]]:
        """The timers and GETs the chains asked for, in the order they asked (the caller
        records the events, which :meth:`scheduled` then pairs with their chains)."""
        made: list[tuple[Action, HistoryEvent]] = []
        next_id = self._next_id
        for owner in self._want_timer:
            fire_at = now + self._next[owner][1]
            made.append((ScheduleTimer(next_id, fire_at),
                         TimerCreated(timestamp=now, event_id=next_id, fire_at=fire_at)))
            next_id += 1
        for owner in self._want_get:
            request = {"method": "GET", "uri": self._next[owner][0], "content": None,
                       "headers": self._headers.get(owner, {})}
            payload = json.dumps(request)
            made.append((ScheduleActivity(next_id, HTTP_ACTIVITY_NAME, payload),
                         TaskScheduled(timestamp=now, event_id=next_id,
                                       name=HTTP_ACTIVITY_NAME, input=payload)))
            next_id += 1
        return made


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


__all__ = ["POLL_BASE", "HttpPolls"]
