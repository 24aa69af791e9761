"""Where durable reads the time: one ``Clock``, injected into the storage, the worker and the
client, so that tests can run on virtual time.

Timestamps in history, lease expiry and timer due times all come from ``clock.now()`` (UTC
epoch seconds). Only durations that measure the program itself (poll intervals, shutdown
deadlines, how long a caller waits) use the real monotonic clock.

:class:`VirtualClock` moves only when told to: ``advance(timedelta(days=30))`` makes a 30-day
timer due at once, and everything that waits on the clock (the worker's timer queue, its poll
loop) is woken so it looks again. :mod:`durable.testing` builds on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from durable.errors import InvalidInputError
from durable.history import to_datetime, to_timestamp


class Clock(Protocol):
    def now(self) -> float:
        """UTC epoch seconds."""

    def on_jump(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever time moves other than by passing (virtual clocks)."""


class SystemClock:
    """The wall clock. It never jumps, so ``on_jump`` callbacks never run."""

    def now(self) -> float:
        return time.time()

    def on_jump(self, callback: Callable[[], None]) -> None:
        return None

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


def clock_of(backend: object) -> Clock:
    """The clock a backend runs on (``durable.Host`` sets it); the wall clock if it has none."""
    clock = getattr(backend, "clock", None)
    return clock if clock is not None else SYSTEM_CLOCK


class VirtualClock:
    """Time that stands still until ``advance`` or ``set`` moves it (never backwards)."""

    def __init__(self, start: datetime | float | None = None) -> None:
        if start is None:
            self._now = time.time()
        elif isinstance(start, datetime):
            self._now = to_timestamp(start)
        else:
            self._now = float(start)
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    @property
    def moment(self) -> datetime:
        """The virtual now, as an aware UTC datetime."""
        return to_datetime(self._now)

    def on_jump(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if not seconds >= 0:
            raise InvalidInputError("A virtual clock only moves forward.")
        self.set(self._now + seconds)

    def set(self, moment: datetime | float) -> None:
        value = to_timestamp(moment) if isinstance(moment, datetime) else float(moment)
        if value < self._now:
            raise InvalidInputError("A virtual clock only moves forward.")
        self._now = value
        for callback in list(self._listeners):
            callback()

    def __repr__(self) -> str:
        return f"VirtualClock({self.moment.isoformat()})"
