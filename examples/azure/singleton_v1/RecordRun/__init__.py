"""Append one line per job run to runs.log beside the app, so "exactly one ran" can be
checked; return how many runs that instance ID has had."""

from pathlib import Path

RUNS_LOG = Path(__file__).resolve().parent.parent / "runs.log"


def main(instanceId: str) -> int:
    with RUNS_LOG.open("a") as log:
        log.write(instanceId + "\n")
    return RUNS_LOG.read_text().split().count(instanceId)
