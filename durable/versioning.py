"""Orchestration versioning (Durable Functions' 2025 model): which worker may run which
instance during a rolling upgrade.

- Every instance has a **version**: the one given to ``start_new(..., version=)``, else the
  app's ``default_version`` (also for sub-orchestrations started without one). The
  orchestrator reads it as ``context.version`` and can branch on it.
- A worker runs the app's ``default_version`` (its "current" version) and a **match strategy**:
  ``none`` (run any instance), ``strict`` (only instances of exactly its version) or
  ``current-or-older`` (instances of its version or older).
- When an instance does not match, the **failure strategy** decides: ``reject`` (the default:
  leave the instance for a worker that can run it) or ``fail`` (fail the instance).

Versions compare as dotted numbers when both are ("1.10" > "1.9"), else as text; an instance
without a version is older than any version.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TypeVar

from durable.errors import InvalidInputError

_NUMERIC = re.compile(r"^\d+(\.\d+)*$")
_E = TypeVar("_E", bound=StrEnum)


class VersionMatch(StrEnum):
    NONE = "none"
    STRICT = "strict"
    CURRENT_OR_OLDER = "current-or-older"

    @classmethod
    def parse(cls, value: str | VersionMatch | None) -> VersionMatch:
        return _parse(cls, value, cls.NONE)


class VersionFailure(StrEnum):
    REJECT = "reject"
    FAIL = "fail"

    @classmethod
    def parse(cls, value: str | VersionFailure | None) -> VersionFailure:
        return _parse(cls, value, cls.REJECT)


def _parse(kind: type[_E], value: str | _E | None, default: _E) -> _E:
    if value is None or value == "":
        return default
    if isinstance(value, kind):
        return value
    wanted = str(value).strip().lower().replace("_", "-")
    aliases = {"currentorolder": "current-or-older"}
    wanted = aliases.get(wanted.replace("-", ""), wanted)
    for member in kind:
        if member.value == wanted:
            return member
    raise InvalidInputError(
        f"{value!r} is not a version {kind.__name__[7:].lower()} strategy: use "
        + ", ".join(m.value for m in kind))


def compare_versions(a: str | None, b: str | None) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b``."""
    if (a or "") == (b or ""):
        return 0
    if not a:
        return -1
    if not b:
        return 1
    if _NUMERIC.match(a) and _NUMERIC.match(b):
        left = [int(p) for p in a.split(".")]
        right = [int(p) for p in b.split(".")]
        width = max(len(left), len(right))
        left += [0] * (width - len(left))
        right += [0] * (width - len(right))
        return (left > right) - (left < right)
    return (a > b) - (a < b)


def can_run(instance_version: str | None, worker_version: str | None,
            strategy: VersionMatch) -> bool:
    if strategy is VersionMatch.NONE:
        return True
    order = compare_versions(instance_version, worker_version)
    if strategy is VersionMatch.STRICT:
        return order == 0
    return order <= 0
