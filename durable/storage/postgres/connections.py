"""Connections to PostgreSQL after an outage: how fast to reconnect, and what a failure means.

- **Reconnecting.** Every reconnection (the pool's, the LISTEN connections') waits 0.1 s after
  the first failure, then doubles, up to 1 s, each delay jittered by ±20 %. A server that comes
  back (a restart, a promoted standby) is written to again within about a second, and a server
  that stays down sees at most about one attempt per second per lost connection; jitter keeps
  many processes from reconnecting in lockstep. psycopg_pool's own back-off doubles from 1 s
  without a cap, which left workers idle for up to half their outage after it ended.
- **Failures.** :func:`diagnose` says what an error from a transaction means: try again on
  the same pool (deadlock), reconnect and try again (the connection or the server went away, or
  the server no longer takes writes: a standby, a demoted primary), a COMMIT whose outcome is
  unknown, or an answer to pass on (a full disk, a refused value). Only an error without an
  answer from the server leaves a COMMIT's outcome unknown: a server that *answers* an error
  to the message carrying our COMMIT did not commit.
"""

from __future__ import annotations

import enum
import random
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.base import AttemptWithBackoff

FIRST_DELAY = 0.1
MAX_DELAY = 1.0
JITTER = 0.2

# The server is going away or not taking sessions: admin shutdown (pg_terminate_backend, a fast
# or immediate stop), crash shutdown, "the database system is starting up/shutting down", and
# the end of an idle session (idle_session_timeout).
_GOING_AWAY = frozenset({"57P01", "57P02", "57P03", "57P05"})


class Backoff:
    """Delays between reconnection attempts: ``first`` doubling to ``cap``, jittered."""

    def __init__(self, first: float = FIRST_DELAY, cap: float = MAX_DELAY,
                 jitter: float = JITTER) -> None:
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self._base = 0.0

    def next(self) -> float:
        """The delay before the next attempt."""
        self._base = self.first if self._base == 0.0 else min(self._base * 2, self.cap)
        return self._base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """After a success: the next failure starts again from ``first``."""
        self._base = 0.0


class _Attempt(AttemptWithBackoff):
    """psycopg_pool's reconnection state with our delays (it keeps its own give-up time)."""

    def __init__(self, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._backoff = Backoff()

    def update_delay(self, now: float) -> None:
        if self.give_up_at == 0.0:
            self.give_up_at = now + self.timeout
        self.delay = min(self._backoff.next(), max(0.0, self.give_up_at - now))


class ReconnectingPool(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """psycopg_pool's pool, reconnecting with :class:`Backoff` instead of its own delays.

    psycopg_pool takes no back-off parameters: a connection it adds starts from a fresh
    ``AttemptWithBackoff`` made in ``_add_connection``, so that is where ours is handed in
    (``tests/storage/test_postgres_connections.py`` checks that it still takes effect).
    """

    async def _add_connection(self, attempt: AttemptWithBackoff | None,
                              growing: bool = False) -> None:
        await super()._add_connection(
            attempt if attempt is not None else _Attempt(timeout=self.reconnect_timeout),
            growing,
        )


class Verdict(enum.Enum):
    """What to do about an error raised while running a transaction."""

    RETRY = "retry"  # deadlock or serialization failure: nothing was written, run it again
    RECONNECT = "reconnect"  # nothing was written; drop this server's connections, run again
    READ_ONLY = "read_only"  # as RECONNECT; if it persists, the server is read-only
    UNKNOWN = "unknown"  # the connection died while the server may have been committing
    ERROR = "error"  # the server's answer: pass it on as a typed error


def diagnose(exc: psycopg.Error, conn: psycopg.AsyncConnection[Any] | None,
             committing: bool) -> Verdict:
    """What ``exc`` means, given the connection it came from and whether the message that
    failed carried the COMMIT."""
    if isinstance(exc, pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
        return Verdict.RETRY
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        # An answer: the statement that wrote was refused, and what followed it in the same
        # message (our COMMIT) was skipped. A standby, or a primary demoted by a failover.
        return Verdict.READ_ONLY
    if is_connection_lost(exc, conn):
        return Verdict.UNKNOWN if committing else Verdict.RECONNECT
    return Verdict.ERROR


def is_connection_lost(exc: psycopg.Error, conn: psycopg.AsyncConnection[Any] | None) -> bool:
    """Whether ``exc`` says the session is over (no answer will come on it)."""
    state = exc.sqlstate
    if state in _GOING_AWAY or (state or "").startswith("08"):
        return True
    if state is None and isinstance(exc, psycopg.OperationalError):
        return True  # raised by the client: the socket failed, or the connection is closed
    # A FATAL ends the session whatever its code (idle_in_transaction_session_timeout, ...).
    return conn is not None and conn.closed
