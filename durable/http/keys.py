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
from collections.abc import Mapping
from dataclasses import dataclass

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


_CODE_IN_URL = re.compile(r"(?i)([?&]code=)[^&\s\"]*")


def redact(text: str) -> str:
    """``text`` with every ``code=<key>`` in a URL replaced by ``code=***``."""
    return _CODE_IN_URL.sub(r"\1***", text)


class RedactKeysFilter(logging.Filter):
    """A logging filter that keeps keys passed as ``code=`` out of log lines (access logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
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
