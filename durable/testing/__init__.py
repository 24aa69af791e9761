"""Testing tools for durable apps: unit-test orchestrators, replay stored histories.

- :class:`OrchestratorTester`: drive one orchestrator in memory with the results you choose
  (virtual time, a cold-replay check after every step).
- :func:`replay` / :func:`replay_history`: replay history files against today's code and
  report non-determinism before deploying it; :func:`export_history` writes the file format.
- :func:`run_app`, :func:`run_until_done`, :func:`advance`, :func:`settle`: a whole app on the
  in-memory store and virtual time (a 30-day timer completes at once).
- ``durable.testing.pytest_plugin``: fixtures (``durable_host``, ``durable_client``).

See docs/testing.md.
"""

from durable.testing.host import advance, run_app, run_until_done, settle
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
    "advance",
    "export_history",
    "read_history_file",
    "replay",
    "replay_history",
    "run_app",
    "run_until_done",
    "settle",
]
