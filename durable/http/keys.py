"""Access keys for HTTP routes and the management API.

Three keys, named after their Azure Functions counterparts:

- **function** (``DURABLE_FUNCTION_KEY``): routes with ``auth_level=FUNCTION``.
- **system** (``DURABLE_SYSTEM_KEY``): the management API under
  ``/runtime/webhooks/durabletask``. It is the ``code=`` that check-status URLs carry, as
  Azure's ``durabletask_extension`` system key is, so handing those URLs to a caller grants
  management of instances and nothing else.
- **master** (``DURABLE_MASTER_KEY``): everything, and the only key for ``auth_level=ADMIN``.

A key is presented as the ``code`` query parameter or the ``x-functions-key`` header and is
compared in constant time. Keys are enforced only when the server listens beyond loopback
(``--host 0.0.0.0``), like Azure Functions Core Tools, which never asks for keys locally.

A key not set in the environment is generated once and stored with the task hub (storage
setting ``http.key.<name>``), so every ``durable run`` process on one task hub agrees on it and
it survives restarts. Keys are shown only masked (:func:`mask`); ``durable keys`` prints them.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

from durable.app import AuthLevel
from durable.storage.base import Backend

KEY_NAMES = ("function", "system", "master")
KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"
_SETTING = "http.key.{}"
_ENV = "DURABLE_{}_KEY"


def is_loopback(host: str) -> bool:
    """True if ``host`` (a listen address) only accepts connections from this machine.

    Wildcards (``0.0.0.0``, ``::``, empty) and any name but ``localhost`` count as beyond
    loopback: when in doubt, keys are required.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def mask(key: str) -> str:
    """Enough of a key to tell keys apart in logs, never enough to use it."""
    return f"{key[:4]}…({len(key)} chars)"


_QUERY_PARAMETER = re.compile(r"([?&])([^=&#\s\"']*)=([^&#\s\"']*)")


def _hide_code(match: re.Match[str]) -> str:
    # The name as the server reads it: "%63ode" and "c%6Fde" are "code" too.
    if unquote_plus(match.group(2)).strip().lower() == KEY_QUERY:
        return f"{match.group(1)}{match.group(2)}=***"
    return match.group(0)


def redact(text: str, keys: Iterable[str] = ()) -> str:
    """``text`` with every ``code=<key>`` in a URL (however the name is percent-encoded)
    replaced by ``code=***``, and every occurrence of one of ``keys`` masked."""
    if "=" in text:
        text = _QUERY_PARAMETER.sub(_hide_code, text)
    for key in keys:
        if key and key in text:
            text = text.replace(key, mask(key))
        escaped = quote(key, safe="") if key else ""
        if escaped and escaped != key and escaped in text:
            text = text.replace(escaped, mask(key))
    return text


class RedactKeysFilter(logging.Filter):
    """A logging filter that keeps keys out of log lines: ``code=`` in any URL, and the
    actual key values wherever they appear (message, arguments, traceback).

    Attached to the *handlers* of the root and uvicorn loggers by ``durable run``, so it sees
    every record that is written, whichever logger it came from.
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        super().__init__()
        self.keys = tuple(k for k in keys if k)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # uvicorn's access formatter unpacks the arguments: keep them a tuple.
            record.args = tuple(redact(a, self.keys) if isinstance(a, str) else a
                                for a in record.args)
            if isinstance(record.msg, str):
                record.msg = redact(record.msg, self.keys)
        else:
            try:
                message = record.getMessage()
            except Exception:  # a broken record: let the handler report it as usual
                return True
            record.msg, record.args = redact(message, self.keys), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info),
                                     self.keys)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, self.keys)
        return True


def _matches(presented: bytes, key: str) -> bool:
    return hmac.compare_digest(presented, key.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The three keys, and whether this server enforces them."""

    function: str
    system: str
    master: str
    required: bool
    sources: Mapping[str, str] | None = None  # key name -> "environment" | "task hub"

    def allows(self, level: AuthLevel | str, presented: str | None) -> bool:
        """May a request presenting ``presented`` call something protected at ``level``?

        ``level`` is an :class:`AuthLevel` or ``"system"`` (the management API).
        """
        if not self.required or level == AuthLevel.ANONYMOUS:
            return True
        if not presented:
            return False
        given = presented.encode("utf-8")
        # Compare against every candidate so timing does not reveal which key matched.
        master = _matches(given, self.master)
        if level == AuthLevel.ADMIN:
            return master
        other = self.system if level == "system" else self.function
        return _matches(given, other) | master

    def describe(self) -> list[str]:
        """Masked, human-readable lines for the start-up banner."""
        sources = self.sources or {}
        return [
            f"{name} key {mask(getattr(self, name))} (from {sources.get(name, 'configuration')})"
            for name in KEY_NAMES
        ]


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request carries: the ``x-functions-key`` header, else ``code``."""
    return headers.get(KEY_HEADER) or query.get(KEY_QUERY) or None


async def load_keys(
    backend: Backend, *, required: bool, environ: Mapping[str, str] | None = None
) -> KeyRing:
    """Keys from the environment, else from the task hub (generated there on first use).

    ``put_setting_if_absent`` makes generation race-free: of several processes starting on
    one task hub at once, all end up with the key the first one stored.
    """
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in KEY_NAMES:
        configured = env.get(_ENV.format(name.upper()))
        if configured:
            values[name] = configured
            sources[name] = "environment"
            continue
        setting = _SETTING.format(name)
        stored = await backend.get_setting(setting)
        if stored is None:
            stored = await backend.put_setting_if_absent(setting, secrets.token_urlsafe(32))
        values[name] = stored
        sources[name] = "task hub"
    return KeyRing(
        function=values["function"],
        system=values["system"],
        master=values["master"],
        required=required,
        sources=sources,
    )
