"""The short crash-point sweep of the test suite: kill -9 at seeded random moments of a start
burst and the commits after it, on SQLite and PostgreSQL; nothing lost, nothing completed
twice (durable/tests/reliability/crashpoints.py runs the long sweep on demand).

``DURABLE_CRASH_ROUNDS`` sets the rounds per backend (default 3), ``DURABLE_CRASH_SEED`` the
first seed (default fixed, so the suite kills at the same moments every run).
"""

from __future__ import annotations

import os

import pytest

from tests.reliability.crashpoints import sweep

ROUNDS = int(os.environ.get("DURABLE_CRASH_ROUNDS", "3"))
SEED = int(os.environ.get("DURABLE_CRASH_SEED", "20261202"))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_kill_9_at_random_moments_loses_nothing(backend: str) -> None:
    if backend == "postgres":
        from tests.conftest import postgres_url

        postgres_url.__call__  # noqa: B018 - the import fails loudly if the helper moved
    lines: list[str] = []
    results = await sweep([backend], ROUNDS, SEED, lines.append)
    print("\n" + "\n".join(lines))
    assert all(r.ok for r in results), "\n".join(lines)
    # The kills landed while there was work to lose (not before or after everything).
    assert any(r.accepted and r.completed_before_kill < r.accepted for r in results), lines
