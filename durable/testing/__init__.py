"""Testing tools for durable apps: unit-test orchestrators, replay stored histories.

- :class:`OrchestratorTester`: drive one orchestrator in memory with the results you choose
  (virtual time, a cold-replay check after every step).
- :func:`replay` / :func:`replay_history`: replay history files against today's code and
  report non-determinism before deploying it; :func:`export_history` writes the file format.

See docs/testing.md.
"""

from durable.testing.orchestrators import Call, OrchestratorTester, Step
from durable.testing.replay import (
    ReplayProblem,
    ReplayReport,
    export_history,
    read_history_file,
    replay,
    replay_history,
)

__all__ = [
    "Call",
    "OrchestratorTester",
    "ReplayProblem",
    "ReplayReport",
    "Step",
    "export_history",
    "read_history_file",
    "replay",
    "replay_history",
]
