"""What a ``postgresql://`` URL configures: libpq connection, task hub, pool sizes.

Options of ours are removed from the URL; every other option goes to libpq, which is also
given defaults the URL may override (a value in the URL always wins):

- ``connect_timeout=5``: an unreachable host fails an attempt in seconds, not minutes;
- ``application_name=durable:host:pid``: who holds a session, in ``pg_stat_activity``;
- TCP keepalives and ``tcp_user_timeout`` (:data:`TCP_DEFAULTS`): without them a connection to
  a host that vanished without a reset (a failover that moved the address, a dead VM, a
  firewall dropping state) looks alive to the kernel, and a statement waiting on it hangs for
  the ~15 minutes of TCP's retransmissions. With them it fails in about 15 s, and the
  transaction is retried on a fresh connection.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from durable.errors import InvalidInputError

DEFAULT_HUB = "durable"
DEFAULT_POOL_MIN = 1
DEFAULT_POOL_MAX = 10
DEFAULT_POOL_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_IDLE_TXN_TIMEOUT = 5.0
# A pooled connection is replaced after this long (psycopg_pool takes up to 5 % off each, so
# they do not all go at once): a pool never stays on one server for longer, whatever happened
# to it (a standby behind the same address keeps answering reads after a failover).
DEFAULT_MAX_LIFETIME = 300.0
_HUB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
_OUR_OPTIONS = ("hub", "pool_min", "pool_max", "pool_timeout", "idle_txn_timeout",
                "max_lifetime")

# libpq options every connection gets unless the URL sets them. A connection is found dead
# after 5 s idle + 3 probes 3 s apart (keepalives), or when data it sent has gone unacknowledged
# for 15 s (tcp_user_timeout, ms; libpq 12 or later).
TCP_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("keepalives", "1"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "3"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "15000"),
)


def _int_option(options: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"The storage URL option {key}={raw!r} is not a number.") from None
    if value < minimum:
        raise InvalidInputError(f"The storage URL option {key} must be at least {minimum}.")
    return value


def _float_option(options: Mapping[str, str], key: str, default: float) -> float:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError(f"The storage URL option {key}={raw!r} is not a number.") from None
    if value <= 0:
        raise InvalidInputError(f"The storage URL option {key} must be positive.")
    return value


def default_application_name() -> str:
    """``durable:host:pid``, the start of this process's worker IDs (``host:pid:random``).

    Shown in ``pg_stat_activity``, it tells an operator which process holds a session, and lets
    a test wait until a killed worker's sessions are gone (only then can nothing it sent still
    commit). PostgreSQL keeps the first 63 bytes.
    """
    return f"durable:{socket.gethostname()}:{os.getpid()}"


def _libpq_knows(option: str) -> bool:
    """``tcp_user_timeout`` came with libpq 12; an older libpq refuses unknown options."""
    return option != "tcp_user_timeout" or psycopg.pq.version() >= 120000


class PostgresSettings:
    """What a ``postgresql://`` URL says: the libpq connection string, the hub, pool sizes."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise InvalidInputError(f"Not a PostgreSQL URL: {url!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {key: value for key, value in query if key in _OUR_OPTIONS}
        libpq = [(key, value) for key, value in query if key not in _OUR_OPTIONS]
        self.hub = ours.get("hub", DEFAULT_HUB)
        if not _HUB_NAME.match(self.hub):
            raise InvalidInputError(
                f"The task hub name {self.hub!r} is not valid: use 1-48 lowercase letters, "
                "digits and underscores, not starting with a digit."
            )
        self.pool_min = _int_option(ours, "pool_min", DEFAULT_POOL_MIN, 0)
        self.pool_max = _int_option(ours, "pool_max", max(DEFAULT_POOL_MAX, self.pool_min), 1)
        if self.pool_max < self.pool_min:
            raise InvalidInputError("pool_max must not be smaller than pool_min.")
        self.pool_timeout = _float_option(ours, "pool_timeout", DEFAULT_POOL_TIMEOUT)
        self.idle_txn_timeout = _float_option(ours, "idle_txn_timeout",
                                              DEFAULT_IDLE_TXN_TIMEOUT)
        self.max_lifetime = _float_option(ours, "max_lifetime", DEFAULT_MAX_LIFETIME)
        given = {key for key, _ in libpq}
        defaults = [("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT)),
                    ("application_name", default_application_name()), *TCP_DEFAULTS]
        libpq.extend((key, value) for key, value in defaults
                     if key not in given and _libpq_knows(key))
        self.conninfo = urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(libpq), parts.fragment)
        )
        self.channel = f"durable_work_{self.hub}"
        self.done_channel = f"durable_done_{self.hub}"  # an instance finished
        params = conninfo_to_dict(self.conninfo)
        host = params.get("host") or "localhost"
        port = params.get("port") or "5432"
        self.where = f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"
        netloc = parts.netloc
        if "@" in netloc:
            credentials, _, address = netloc.rpartition("@")
            user = credentials.split(":", 1)[0]
            netloc = f"{user}:***@{address}" if ":" in credentials else f"{user}@{address}"
        shown = urlencode([(k, "***" if k == "password" else v) for k, v in query])
        self.display_url = urlunsplit((parts.scheme, netloc, parts.path, shown, parts.fragment))
