"""durable.testing.OrchestratorTester: orchestrators unit-tested in memory, in virtual time."""

from __future__ import annotations

import contextlib
import itertools
import time
from datetime import timedelta

import pytest

import durable as df
from durable.testing import Call, OrchestratorTester

Status = df.OrchestrationRuntimeStatus


def hello_sequence(context: df.DurableOrchestrationContext):
    results = []
    for city in context.get_input():
        results.append((yield context.call_activity("say_hello", city)))
    return results


def test_drive_a_chain_with_chosen_results() -> None:
    tester = OrchestratorTester(hello_sequence, ["Tokyo", "Seattle"])
    assert tester.start().activities == [Call("say_hello", "Tokyo")]
    assert tester.complete("say_hello", "Hi Tokyo").activities == [Call("say_hello", "Seattle")]
    step = tester.complete("SAY_HELLO", "Hi Seattle")
    assert step.status is Status.Completed and step.output == ["Hi Tokyo", "Hi Seattle"]
    assert tester.status is Status.Completed


def test_a_thirty_day_timer_takes_no_wall_time() -> None:
    def patient(context: df.DurableOrchestrationContext):
        yield context.create_timer(context.current_utc_datetime + timedelta(days=30))
        return context.current_utc_datetime.isoformat()

    began = time.monotonic()
    tester = OrchestratorTester(patient)
    step = tester.start()
    assert step.timers == [tester.now + timedelta(days=30)]
    assert tester.advance(timedelta(days=29)).status is Status.Running
    done = tester.advance(timedelta(days=1))
    assert done.status is Status.Completed and done.output == tester.now.isoformat()
    assert time.monotonic() - began < 1.0


def test_a_retry_back_off_runs_on_virtual_time() -> None:
    def retried(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(first_retry_interval_in_milliseconds=300_000,
                                  max_number_of_attempts=3)
        return (yield context.call_activity_with_retry("flaky", options))

    tester = OrchestratorTester(retried)
    tester.start()
    step = tester.fail("flaky", ConnectionError("down"))
    assert step.activities == [] and len(step.timers) == 1  # waits 5 minutes
    step = tester.advance_to_next_timer()
    assert step.activities == [Call("flaky")]
    assert tester.complete("flaky", "up").output == "up"


def test_a_monitor_loop_with_events_and_timers() -> None:
    def monitor(context: df.DurableOrchestrationContext):
        checks = 0
        while True:
            checks += 1
            done = yield context.call_activity("is_done")
            if done:
                return checks
            with contextlib.suppress(df.EventTimeoutError):
                yield context.wait_for_external_event("poke", timeout=timedelta(hours=1))

    tester = OrchestratorTester(monitor)
    tester.start()
    tester.complete("is_done", False)
    tester.advance(timedelta(hours=1))  # the wait times out; check again
    tester.complete("is_done", False)
    tester.raise_event("poke")  # woken early
    assert tester.complete("is_done", True).output == 3


def test_entity_calls_and_locks_can_be_answered() -> None:
    account = df.EntityId("account", "a")

    def spend(context: df.DurableOrchestrationContext):
        with (yield context.lock([account])):
            balance = yield context.call_entity(account, "get")
            context.signal_entity(account, "add", -balance)
        return balance

    tester = OrchestratorTester(spend)
    assert tester.start().entity_calls == []  # the lock request is pending
    step = tester.grant_locks()
    assert step.entity_calls == [Call("@account@a.get")]
    done = tester.complete("@account@a.get", 40)
    assert done.output == 40 and done.entity_calls == [Call("@account@a.add", -40)]


def test_non_determinism_is_caught_by_the_cold_replay_check() -> None:
    calls = itertools.count()

    def reads_a_counter(context: df.DurableOrchestrationContext):
        yield context.call_activity("step")
        # A value from outside the orchestration: different when replayed (like the clock).
        return (yield context.call_activity(f"branch-{next(calls)}"))

    tester = OrchestratorTester(reads_a_counter)
    tester.start()
    with pytest.raises(AssertionError, match="not deterministic"):
        tester.complete("step", None)


def test_misuse_says_what_is_pending() -> None:
    tester = OrchestratorTester(hello_sequence, ["Tokyo"])
    tester.start()
    with pytest.raises(df.InvalidInputError, match="pending: say_hello"):
        tester.complete("other", None)
    tester.complete("say_hello", "x")
    with pytest.raises(df.InvalidInputError, match="already ended"):
        tester.raise_event("late")
