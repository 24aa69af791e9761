"""call_activity_with_retry and call_sub_orchestrator_with_retry: attempts and durable delays.

Every delay between attempts must be a durable timer in history (so a restart in the middle of
a back-off keeps waiting the right time), and the next attempt must be scheduled no earlier than
that timer's due time.
"""

from __future__ import annotations

from typing import Any

import pytest

import durable as df
from tests.e2e.conftest import Status, events_of, history_of, parse_time, run_to_end, running


def flaky_app(failures_before_success: int) -> tuple[df.DFApp, list[int]]:
    """An app whose activity ``flaky`` fails a set number of times, then succeeds."""
    app = df.DFApp()
    attempts: list[int] = []

    @app.activity_trigger(input_name="value")
    def flaky(value: int) -> int:
        attempts.append(value)
        if len(attempts) <= failures_before_success:
            raise ConnectionError(f"attempt {len(attempts)} failed")
        return value * 10

    return app, attempts


def retry_delays_ms(history: list[dict[str, Any]]) -> list[float]:
    """Each retry timer's delay (fire time minus the time it was scheduled), in ms."""
    return [
        round((parse_time(t["FireAt"]) - parse_time(t["ScheduledTime"])).total_seconds() * 1000)
        for t in events_of(history, "TimerFired")
    ]


def assert_attempts_wait_for_their_timers(history: list[dict[str, Any]]) -> None:
    attempts = [e for e in history if e["EventType"] in ("TaskCompleted", "TaskFailed")]
    timers = events_of(history, "TimerFired")
    for timer, next_attempt in zip(timers, attempts[1:], strict=False):
        assert parse_time(next_attempt["ScheduledTime"]) >= parse_time(timer["FireAt"])


async def test_fixed_interval_retry_succeeds_after_failures(db_url: str) -> None:
    app, attempts = flaky_app(failures_before_success=2)

    @app.orchestration_trigger(context_name="context")
    def orch(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(first_retry_interval_in_milliseconds=100,
                                  max_number_of_attempts=5)
        return (yield context.call_activity_with_retry("flaky", options, 4))

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, orch)
        history = await history_of(host.client, status.instance_id)

    assert status.output == 40
    assert attempts == [4, 4, 4]
    assert [e["EventType"] for e in history if e["EventType"].startswith(("Task", "Timer"))] == [
        "TaskFailed", "TimerFired", "TaskFailed", "TimerFired", "TaskCompleted",
    ]
    assert retry_delays_ms(history) == [100, 100]
    assert_attempts_wait_for_their_timers(history)


async def test_exponential_backoff_is_capped_by_max_interval_and_fails_after_last_attempt(
    db_url: str,
) -> None:
    app, attempts = flaky_app(failures_before_success=99)

    @app.orchestration_trigger(context_name="context")
    def orch(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(
            first_retry_interval_in_milliseconds=50,
            max_number_of_attempts=5,
            backoff_coefficient=2.0,
            max_retry_interval_in_milliseconds=150,
        )
        try:
            yield context.call_activity_with_retry("flaky", options, 1)
        except df.TaskFailedError as error:
            return error.failure.message
        return "not reached"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, orch)
        history = await history_of(host.client, status.instance_id)

    assert status.output == "attempt 5 failed"
    assert len(attempts) == 5
    # 50, 100, then 200 and 400 capped at 150; no extra timer after the last attempt.
    assert retry_delays_ms(history) == [50, 100, 150, 150]
    assert len(events_of(history, "TaskFailed")) == 5
    assert_attempts_wait_for_their_timers(history)


async def test_retry_timeout_stops_retrying(db_url: str) -> None:
    app, attempts = flaky_app(failures_before_success=99)

    @app.orchestration_trigger(context_name="context")
    def orch(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(
            first_retry_interval_in_milliseconds=100,
            max_number_of_attempts=50,
            retry_timeout_in_milliseconds=250,
        )
        try:
            yield context.call_activity_with_retry("flaky", options, 1)
        except df.TaskFailedError:
            return len(attempts)
        return "not reached"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, orch)
        history = await history_of(host.client, status.instance_id)

    assert status.runtime_status is Status.Completed
    # With 100 ms between attempts a 250 ms budget allows about three; the exact count depends
    # on scheduling, the invariants below do not.
    assert 2 <= len(attempts) <= 5
    first = parse_time(events_of(history, "TaskFailed")[0]["ScheduledTime"])
    for timer in events_of(history, "TimerFired"):
        assert (parse_time(timer["ScheduledTime"]) - first).total_seconds() < 0.25
    ended = parse_time(events_of(history, "ExecutionCompleted")[0]["Timestamp"])
    assert (ended - first).total_seconds() >= 0.25


async def test_handle_predicate_stops_on_errors_it_rejects(db_url: str) -> None:
    app = df.DFApp()
    attempts: list[str] = []

    @app.activity_trigger(input_name="unused")
    def changes_its_mind(unused: Any) -> None:
        attempts.append("x")
        if len(attempts) < 3:
            raise TimeoutError("transient")
        raise PermissionError("permanent")

    def only_transient(error: Exception) -> bool:
        assert isinstance(error, df.TaskFailedError)
        return error.error_type == "TimeoutError"

    @app.orchestration_trigger(context_name="context")
    def orch(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(50, 10, handle=only_transient)
        yield context.call_activity_with_retry("changes_its_mind", options)

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, orch)
        history = await history_of(host.client, status.instance_id)

    assert status.runtime_status is Status.Failed
    assert len(attempts) == 3
    assert len(events_of(history, "TimerFired")) == 2
    assert status.failure_details["errorType"] == "durable.errors.TaskFailedError"
    assert "PermissionError: permanent" in status.failure_details["message"]


async def test_sub_orchestrator_with_retry_reruns_the_child(db_url: str) -> None:
    app = df.DFApp()
    runs: list[str | None] = []

    @app.activity_trigger(input_name="n")
    def count_run(n: int) -> int:
        runs.append(str(n))
        if len(runs) < 3:
            raise ValueError(f"child run {len(runs)} failed")
        return len(runs)

    @app.orchestration_trigger(context_name="context")
    def child(context: df.DurableOrchestrationContext):
        return (yield context.call_activity("count_run", context.get_input()))

    @app.orchestration_trigger(context_name="context")
    def parent(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(50, 3)
        explicit = yield context.call_sub_orchestrator_with_retry(
            "child", options, 1, instance_id=f"{context.instance_id}-child"
        )
        return explicit

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, parent, instance_id="retry-parent")
        child_status = await host.client.get_status("retry-parent-child")
        history = await history_of(host.client, "retry-parent")

    assert status.output == 3
    assert runs == ["1", "1", "1"]
    # The same explicit child ID was reused for each attempt; the last one completed.
    assert child_status.runtime_status is Status.Completed
    assert [e["EventType"] for e in history if e["EventType"].startswith("SubOrch")] == [
        "SubOrchestrationInstanceFailed",
        "SubOrchestrationInstanceFailed",
        "SubOrchestrationInstanceCompleted",
    ]
    assert retry_delays_ms(history) == [50, 50]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_retry_interval_in_milliseconds": 0, "max_number_of_attempts": 3},
         "greater than 0"),
        ({"first_retry_interval_in_milliseconds": 10, "max_number_of_attempts": 0}, "at least 1"),
        ({"first_retry_interval_in_milliseconds": 10, "max_number_of_attempts": 2,
          "backoff_coefficient": 0.5}, "backoff_coefficient"),
        ({"first_retry_interval_in_milliseconds": 10, "max_number_of_attempts": 2,
          "max_retry_interval_in_milliseconds": 0}, "max_retry_interval"),
    ],
)
def test_invalid_retry_options_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        df.RetryOptions(**kwargs)
