"""The console lines of ``durable run`` and ``durable worker``, like Core Tools' function log.

At the default level every orchestration logs its start, its completion (with how long it
took) and its failure with the reason and the user's frames; an activity failure and the retry
that follows are logged too. ``--quiet`` keeps only failures; ``--verbose`` adds each activity,
timer, event and sub-orchestration, and durable's own debug lines.

All of it is derived from the events each committed episode appended (see
:class:`durable.telemetry.EpisodeView`), so it costs nothing when not enabled and needs no
extra storage reads when it is.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from enum import IntEnum

from durable.errors import FailureDetails
from durable.history import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
)
from durable.orchestration.actions import ScheduleTimer
from durable.telemetry import EpisodeView, Observer
from durable.telemetry.tracebacks import user_frames

LOGGER = "durable.functions"
_MAX_TRACKED = 100_000
log = logging.getLogger(LOGGER)


class Verbosity(IntEnum):
    QUIET = 0  # failures only
    NORMAL = 1  # starts, completions, failures, activity failures and retries
    VERBOSE = 2  # everything, and durable's debug log


_OWN_DEPENDENCIES = ("httpx", "httpcore")


def configure_logging(verbosity: Verbosity = Verbosity.NORMAL) -> None:
    """Console logging for the CLI: concise lines on stderr; the app's own lines at INFO (the
    libraries durable itself uses for HTTP at WARNING unless verbose).

    The per-orchestration lines (logger ``durable.functions``) follow the verbosity; durable's
    own lines (serving, shutting down, storage trouble) stay at INFO unless verbose.
    """
    level = logging.DEBUG if verbosity is Verbosity.VERBOSE else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                           datefmt="%H:%M:%S"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    # Your functions' own lines (logging.info(...), module loggers) at INFO, as the Azure
    # Functions Python worker sets its root logger and Core Tools shows them; -q keeps
    # failures only.
    root.setLevel(logging.WARNING if verbosity is Verbosity.QUIET else logging.INFO)
    for chatty in _OWN_DEPENDENCIES:  # durable's own HTTP client: a line per call_http poll
        logging.getLogger(chatty).setLevel(logging.INFO if verbosity is Verbosity.VERBOSE
                                           else logging.WARNING)
    logging.getLogger("durable").setLevel(level)
    logging.getLogger(LOGGER).setLevel(
        logging.WARNING if verbosity is Verbosity.QUIET else level)


def failure_text(failure: FailureDetails | None, with_frames: bool = True) -> str:
    """``ErrorType: message`` and, if asked, the user's frames indented below it."""
    if failure is None:
        return "unknown error"
    head = f"{failure.error_type}: {failure.message}"
    frames = user_frames(failure.details) if with_frames else None
    if not frames:
        return head
    body = [line for line in frames.rstrip().splitlines() if line.strip()]
    return head + "\n" + "\n".join("    " + line for line in body)


def _short(instance_id: str) -> str:
    return instance_id if len(instance_id) <= 40 else instance_id[:37] + "..."


class ConsoleObserver(Observer):
    """Logs what each episode did, at the verbosity chosen (see the module docstring)."""

    def __init__(self, verbosity: Verbosity = Verbosity.NORMAL,
                 logger: logging.Logger | None = None) -> None:
        self.verbosity = verbosity
        self.log = logger or log
        # task id -> activity name, per (instance, execution), to name results and retries.
        self._tasks: dict[tuple[str, str], dict[int, str]] = {}
        self._failed: dict[tuple[str, str], set[str]] = {}

    def committed(self, episodes: Sequence[EpisodeView], seconds: float) -> None:
        for episode in episodes:
            if episode.ok:
                self._episode(episode)

    def _episode(self, episode: EpisodeView) -> None:
        key = (episode.instance_id, episode.execution_id)
        who = f"{episode.name} ({_short(episode.instance_id)})"
        verbose = self.verbosity >= Verbosity.VERBOSE
        normal = self.verbosity >= Verbosity.NORMAL
        if len(self._tasks) > _MAX_TRACKED:  # instances that moved to other workers
            self._tasks.clear()
            self._failed.clear()
        # Only instances with activities in flight are tracked: an entity never finishes, so
        # an entry for each (even an empty one) grew an idle worker by ~350 bytes per entity.
        tasks = self._tasks.get(key) or {}
        failed_now: list[tuple[str, TaskFailed]] = []
        retrying = any(isinstance(a, ScheduleTimer) for a in episode.decision.actions)
        for event in episode.decision.history:
            if isinstance(event, ExecutionStarted) and normal:
                self.log.info("orchestration %s started", who)
            elif isinstance(event, TaskScheduled):
                tasks[event.event_id] = event.name
                self._tasks[key] = tasks
                earlier = self._failed.get(key, set())
                if event.name in earlier and normal:
                    self.log.info("  activity %s of %s: retrying", event.name, who)
                elif verbose:
                    self.log.debug("  activity %s of %s scheduled", event.name, who)
            elif isinstance(event, TaskFailed):
                name = tasks.pop(event.task_scheduled_id, f"#{event.task_scheduled_id}")
                failed_now.append((name, event))
            elif isinstance(event, TaskCompleted):
                name = tasks.pop(event.task_scheduled_id, f"#{event.task_scheduled_id}")
                if verbose:
                    self.log.debug("  activity %s of %s completed", name, who)
            elif verbose:
                self._verbose_event(event, who)
        if not tasks:
            self._tasks.pop(key, None)
        for name, event in failed_now:
            self._failed.setdefault(key, set()).add(name)
            then = " (a retry is scheduled)" if retrying and not episode.decision.is_done else ""
            self.log.warning("  activity %s of %s failed%s: %s", name, who, then,
                             failure_text(event.failure, with_frames=normal))
        self._finish(episode, who, key)

    def _verbose_event(self, event: HistoryEvent, who: str) -> None:
        if isinstance(event, TimerCreated):
            self.log.debug("  timer of %s created", who)
        elif isinstance(event, EventRaised):
            self.log.debug("  event %r reached %s", event.name, who)
        elif isinstance(event, SubOrchestrationInstanceCreated):
            self.log.debug("  sub-orchestration %s (%s) of %s started", event.name,
                           _short(event.instance_id), who)

    def _finish(self, episode: EpisodeView, who: str, key: tuple[str, str]) -> None:
        decision = episode.decision
        if not decision.is_done:
            return
        self._tasks.pop(key, None)
        self._failed.pop(key, None)
        took = ""
        if episode.started is not None:
            end = decision.history[-1].timestamp if decision.history else episode.started.timestamp
            took = f" in {max(0.0, end - episode.started.timestamp):.3f}s"
        status = decision.status.value
        if decision.continue_as_new is not None:
            if self.verbosity >= Verbosity.NORMAL:
                self.log.info("orchestration %s continued as new%s", who, took)
        elif status == "Completed":
            if self.verbosity >= Verbosity.NORMAL:
                self.log.info("orchestration %s completed%s", who, took)
        elif status == "Failed":
            self.log.error("orchestration %s FAILED%s: %s", who, took,
                           failure_text(decision.failure))
        elif status == "Terminated":
            reason = next((e.reason for e in decision.history
                           if isinstance(e, ExecutionTerminated)), None)
            self.log.warning("orchestration %s terminated%s%s", who, took,
                             f": {reason}" if reason else "")
        elif self.verbosity >= Verbosity.NORMAL:
            self.log.info("orchestration %s %s%s", who, status.lower(), took)


__all__ = ["ConsoleObserver", "Verbosity", "configure_logging", "failure_text"]
