"""The Azure SDK's orchestrator suites, ported (continued): retries and call_http.

See test_sdk_suite.py for how the scenarios are driven and checked. With ``*_with_retry`` the
SDK asks for the task only; the retry timers and further attempts are the host's work, done by
durable under the task IDs the SDK gives them (the IDs the SDK tests' histories use). The
timer after the last failed attempt, which the SDK waits for before it gives up ("legacy
behavior in DTFx", the SDK suite says), is due at once.
"""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import pytest

from durable.errors import FailureDetails
from durable.history import TaskCompleted
from durable.orchestration.actions import (
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    StartSubOrchestration,
)
from durable.orchestration.http_task import HTTP_ACTIVITY_NAME
from durable.status import OrchestrationRuntimeStatus as Status
from tests.azure.sdk_suite import FAILURE, SuiteDriver, activity_error, atomic, flat

CITIES = ["Tokyo", "Seattle", "London"]
FIVE_SECONDS = 5.0


@pytest.fixture(params=[True, False], ids=["session", "replay"])
def live(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def output(decision: Decision) -> Any:
    return json.loads(decision.output or "null")


def retry_chain(attempts: int, *, sub: bool = False) -> Any:
    """The SDK suites' retrying chain: three cities in turn, each with retries."""
    options = df.RetryOptions(5000, attempts)

    def chain(context: df.DurableOrchestrationContext):
        results = []
        for city in CITIES:
            task = (context.call_sub_orchestrator_with_retry("HelloSubOrchestrator", options,
                                                             city) if sub
                    else context.call_activity_with_retry("Hello", options, city))
            results.append((yield task))
        return results

    return df.Orchestrator.create(chain)


def attempt(task_id: int, city: str) -> ScheduleActivity:
    return ScheduleActivity(task_id, "Hello", json.dumps(city))


def retried(city: str) -> tuple[str, str, str]:
    return ("CallActivityWithRetry", "Hello", json.dumps(city))


# -- test_retries.py (RetryOptions(5000, 2)) ----------------------------------------------------


def test_failed_tasks_do_not_hang_the_orchestrator(live: bool) -> None:
    """test_failed_tasks_do_not_hang_orchestrator: each city fails once, waits 5 s and
    succeeds: attempt, timer, attempt take IDs 0-2, 3-5, 6-8."""
    driver = SuiteDriver(retry_chain(2), live_session=live)
    assert driver.start().actions == [attempt(0, "Tokyo")]
    for index, city in enumerate(CITIES):
        first = 3 * index
        assert driver.flunk(first).actions == [ScheduleTimer(first + 1,
                                                             driver.now + FIVE_SECONDS)]
        assert driver.fire(first + 1).actions == [attempt(first + 2, city)]
        decision = driver.finish(first + 2, f"Hello {city}")
    assert decision.status is Status.Completed
    assert output(decision) == driver.sdk["output"] == ["Hello Tokyo", "Hello Seattle",
                                                          "Hello London"]
    assert atomic(driver.sdk) == [retried(city) for city in CITIES]


def test_a_late_completion_of_a_failed_attempt_is_dropped(live: bool) -> None:
    """test_redundant_completion_doesnt_get_processed: a completion for the attempt that
    already failed (and was retried) changes nothing; history does not keep it."""
    driver = SuiteDriver(retry_chain(2), live_session=live)
    driver.start()
    driver.flunk(0)
    driver.fire(1)
    late = driver.episode([TaskCompleted(timestamp=driver.now, task_scheduled_id=0,
                                         result="'Do not pick me up'")])
    assert late.status is Status.Running and late.actions == []
    assert not any(isinstance(e, TaskCompleted) for e in late.history)
    assert driver.finish(2, "Hello Tokyo").actions == [attempt(3, "Seattle")]


def test_retries_can_fail(live: bool) -> None:
    """test_retries_can_fail: both attempts fail; after the last one's timer the task fails
    with the last failure."""
    driver = SuiteDriver(retry_chain(2), live_session=live)
    driver.start()
    driver.flunk(0)
    assert driver.fire(1).actions == [attempt(2, "Tokyo")]
    last = FailureDetails("ValueError", "again", "Stack")
    assert driver.flunk(2, last).actions == [ScheduleTimer(3, driver.now)]
    failed = driver.fire(3)
    assert failed.status is Status.Failed
    assert driver.sdk["error"] == activity_error("Hello", last)
    assert output(failed).endswith(activity_error("Hello", last))


def test_retried_attempts_send_the_same_custom_input(live: bool) -> None:
    """test_retries_with_serializable_input: an object given to call_activity_with_retry is
    sent again, as the SDK encoded it, with every attempt."""
    from tests.azure.test_sdk_suite import Place

    def places(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(5000, 2)
        return (yield context.call_activity_with_retry("Hello", options, Place("Tokyo")))

    driver = SuiteDriver(df.Orchestrator.create(places), live_session=live)
    (first,) = driver.start().actions
    driver.flunk(0)
    (second,) = driver.fire(1).actions
    assert isinstance(first, ScheduleActivity) and isinstance(second, ScheduleActivity)
    assert first.input == second.input == atomic(driver.sdk)[0][2]
    assert json.loads(second.input or "")["__data__"] == "Tokyo"
    assert output(driver.finish(2, "Hello Tokyo")) == "Hello Tokyo"


# -- test_sequential_orchestrator_with_retry.py (RetryOptions(5000, 3)) -------------------------


def test_retry_step_by_step(live: bool) -> None:
    """test_initial_orchestration_state, test_tokyo_state, test_failed_tokyo_with_retry,
    test_failed_tokyo_with_timer_entry, test_failed_tokyo_with_failed_retry,
    test_failed_tokyo_with_failed_retry_timer_added, test_successful_tokyo_with_failed_retry
    _timer_added: the SDK shows one action per task however often it is retried."""
    driver = SuiteDriver(retry_chain(3), live_session=live)
    assert driver.start().actions == [attempt(0, "Tokyo")]
    (action,) = flat(driver.sdk)
    assert action["retryOptions"] == {"firstRetryIntervalInMilliseconds": 5000,
                                      "maxNumberOfAttempts": 3}
    assert driver.flunk(0).actions == [ScheduleTimer(1, driver.now + FIVE_SECONDS)]
    assert atomic(driver.sdk) == [retried("Tokyo")] and not driver.sdk["isDone"]
    assert driver.fire(1).actions == [attempt(2, "Tokyo")]
    assert driver.flunk(2).actions == [ScheduleTimer(3, driver.now + FIVE_SECONDS)]
    assert driver.fire(3).actions == [attempt(4, "Tokyo")]
    assert atomic(driver.sdk) == [retried("Tokyo")]
    assert driver.finish(4, "Hello Tokyo!").actions == [attempt(5, "Seattle")]
    assert atomic(driver.sdk) == [retried("Tokyo"), retried("Seattle")]


@pytest.mark.parametrize("caught", [False, True], ids=["raised", "caught"])
def test_retries_hit_max_attempts(caught: bool, live: bool) -> None:
    """test_failed_tokyo_hit_max_attempts, test_failed_tokyo_hit_max_attempts_in_try_catch:
    three failed attempts (0, 2, 4), their timers (1, 3, then 5 due at once); the failure is
    raised, or caught and the code goes on with the next ID."""

    def try_seattle(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(5000, 3)
        try:
            return (yield context.call_activity_with_retry("Hello", options, "Tokyo"))
        except Exception:
            return (yield context.call_activity_with_retry("Hello", options, "Seattle"))

    driver = SuiteDriver(df.Orchestrator.create(try_seattle) if caught else retry_chain(3),
                         live_session=live)
    driver.start()
    for failed_attempt in (0, 2):
        driver.flunk(failed_attempt)
        driver.fire(failed_attempt + 1)
    assert driver.flunk(4).actions == [ScheduleTimer(5, driver.now)]
    after = driver.fire(5)
    if not caught:
        assert after.status is Status.Failed and driver.sdk["error"] == activity_error("Hello")
        assert atomic(driver.sdk) == [retried("Tokyo")]
        return
    assert after.actions == [attempt(6, "Seattle")]
    done = driver.finish(6, "Hello Seattle!")
    assert done.status is Status.Completed and output(done) == "Hello Seattle!"
    assert atomic(driver.sdk) == [retried("Tokyo"), retried("Seattle")]


def concurrent_retries(count: int, *, first_only: bool = False) -> Any:
    def concurrent(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(5000, 3)
        tasks = [context.call_activity_with_retry("Hello", options, city)
                 for city in CITIES[:count]]
        if first_only:
            return (yield context.task_any(tasks)).result
        return (yield context.task_all(tasks))

    return df.Orchestrator.create(concurrent)


@pytest.mark.parametrize("order", [(6, 7, 8), (8, 6, 7)], ids=["ordered", "unordered"])
def test_concurrent_retries(order: tuple[int, ...], live: bool) -> None:
    """test_concurrent_retriable_results, test_concurrent_retriable_results_unordered_arrival:
    three retried tasks fail (0-2), their timers take 3-5 and the attempts 6-8, whichever
    order the results then arrive in."""
    driver = SuiteDriver(concurrent_retries(3), live_session=live)
    assert [a.task_id for a in driver.start().actions] == [0, 1, 2]  # type: ignore[union-attr]
    for task_id in (0, 1, 2):
        assert driver.flunk(task_id).actions == [ScheduleTimer(task_id + 3,
                                                               driver.now + FIVE_SECONDS)]
    for timer_id, city in zip((3, 4, 5), CITIES, strict=True):
        assert driver.fire(timer_id).actions == [attempt(timer_id + 3, city)]
    for task_id in order:
        done = driver.finish(task_id, f"Hello {CITIES[task_id - 6]}!")
    assert done.status is Status.Completed
    assert output(done) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert atomic(driver.sdk) == [retried(city) for city in CITIES]


def test_concurrent_retries_mixed_arrival(live: bool) -> None:
    """test_concurrent_retriable_results_mixed_arrival: Seattle fails (timer 3), Tokyo
    succeeds, London fails (timer 4); the attempts take 5 and 6."""
    driver = SuiteDriver(concurrent_retries(3), live_session=live)
    driver.start()
    assert driver.flunk(1).actions == [ScheduleTimer(3, driver.now + FIVE_SECONDS)]
    assert driver.finish(0, "Hello Tokyo!").actions == []
    assert driver.flunk(2).actions == [ScheduleTimer(4, driver.now + FIVE_SECONDS)]
    assert driver.fire(3).actions == [attempt(5, "Seattle")]
    assert driver.fire(4).actions == [attempt(6, "London")]
    driver.finish(6, "Hello London!")
    done = driver.finish(5, "Hello Seattle!")
    assert output(done) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


@pytest.mark.parametrize("first_only", [False, True], ids=["when_all", "when_any"])
def test_two_retries_alternating_ids(first_only: bool, live: bool) -> None:
    """test_concurrent_retriable_results_alternating_taskIDs_when_all / _when_any: Seattle
    fails first (timer 2), then Tokyo (timer 3); both timers fire in one episode (attempts 4
    for Seattle, 5 for Tokyo), both attempts succeed in one episode."""
    driver = SuiteDriver(concurrent_retries(2, first_only=first_only), live_session=live)
    driver.start()
    assert driver.flunk(1).actions == [ScheduleTimer(2, driver.now + FIVE_SECONDS)]
    assert driver.flunk(0).actions == [ScheduleTimer(3, driver.now + FIVE_SECONDS)]
    attempts = driver.episode([driver.firing(2), driver.firing(3)])
    assert attempts.actions == [attempt(4, "Seattle"), attempt(5, "Tokyo")]
    done = driver.episode([driver.completion(4, "Hello Seattle!"),
                           driver.completion(5, "Hello Tokyo!")])
    assert done.status is Status.Completed
    assert output(done) == ("Hello Seattle!" if first_only else ["Hello Tokyo!",
                                                                  "Hello Seattle!"])


# -- test_sub_orchestrator_with_retry.py (RetryOptions(5000, 3)) --------------------------------


def child(task_id: int, city: str) -> StartSubOrchestration:
    return StartSubOrchestration(task_id, "HelloSubOrchestrator", f"exec:{task_id}",
                                 json.dumps(json.dumps(city)))


def test_sub_orchestrators_with_retry(live: bool) -> None:
    """test_tokyo_and_seattle_and_london_state, test_tokyo_and_seattle_and_london_state_
    partial_failure: Seattle's child fails once (timer 2), its retry is child 3 (a new
    instance ID), London's is 4."""
    driver = SuiteDriver(retry_chain(3, sub=True), live_session=live)
    assert driver.start().actions == [child(0, "Tokyo")]
    assert driver.finish(0, "Hello Tokyo!").actions == [child(1, "Seattle")]
    assert driver.flunk(1).actions == [ScheduleTimer(2, driver.now + FIVE_SECONDS)]
    assert driver.fire(2).actions == [child(3, "Seattle")]
    assert driver.finish(3, "Hello Seattle!").actions == [child(4, "London")]
    done = driver.finish(4, "Hello London!")
    assert output(done) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert atomic(driver.sdk) == [("CallSubOrchestratorWithRetry", "HelloSubOrchestrator",
                                   json.dumps(city)) for city in CITIES]


def test_sub_orchestrators_with_retry_all_failed(live: bool) -> None:
    """test_tokyo_and_seattle_and_london_state_all_failed: three failed children (0, 2, 4);
    the error is the last failure as the Azure host words a failed sub-orchestration."""
    driver = SuiteDriver(retry_chain(3, sub=True), live_session=live)
    driver.start()
    for task_id in (0, 2, 4):
        driver.flunk(task_id)
        failed = driver.fire(task_id + 1)
    assert failed.status is Status.Failed
    reason = f"Orchestrator function 'HelloSubOrchestrator' failed: {FAILURE.message}"
    assert driver.sdk["error"] == f"{reason} \n {FAILURE.details}"
    assert atomic(driver.sdk) == [("CallSubOrchestratorWithRetry", "HelloSubOrchestrator",
                                   '"Tokyo"')]


# -- test_call_http.py --------------------------------------------------------------------------

TEST_URI = "https://localhost:7071/we_just_need_a_uri_to_use_for_testing"


def test_call_http_get(live: bool) -> None:
    """test_initial_orchestration_state, test_completed_state (call_http file): the request
    is durable's built-in HTTP activity; its answer completes the SDK's task."""

    def get(context: df.DurableOrchestrationContext):
        yield context.call_http("GET", TEST_URI)

    driver = SuiteDriver(df.Orchestrator.create(get), live_session=live)
    (request,) = driver.start().actions
    assert isinstance(request, ScheduleActivity) and request.task_id == 0
    assert request.name == HTTP_ACTIVITY_NAME
    assert json.loads(request.input or "") == {"method": "GET", "uri": TEST_URI,
                                               "content": None, "headers": {}}
    (action,) = flat(driver.sdk)
    assert action["httpRequest"]["uri"] == TEST_URI and action["httpRequest"]["method"] == "GET"
    done = driver.finish(0, {"statusCode": 200, "content": '{"name": "simple"}', "headers": {}})
    assert done.status is Status.Completed and driver.sdk["isDone"] is True
    assert output(done) is None


def test_call_http_failed(live: bool) -> None:
    """test_failed_state (call_http file): the request's failure, worded as the Azure host
    words a failed activity, fails the orchestration."""

    def get(context: df.DurableOrchestrationContext):
        yield context.call_http("GET", TEST_URI)

    driver = SuiteDriver(df.Orchestrator.create(get), live_session=live)
    driver.start()
    failed = driver.flunk(0)
    assert failed.status is Status.Failed
    assert driver.sdk["error"] == activity_error(HTTP_ACTIVITY_NAME)


def test_call_http_post_without_a_token(live: bool) -> None:
    """test_initial_post_state / test_post_completed_state without their token source:
    content (an object, sent as JSON text) and headers reach the request as the SDK sets
    them."""
    content = {"name": "some data", "additional": "data"}
    headers = {"header1": "value1", "header2": "value2"}

    def post(context: df.DurableOrchestrationContext):
        yield context.call_http("POST", TEST_URI, content=content, headers=headers)

    driver = SuiteDriver(df.Orchestrator.create(post), live_session=live)
    (request,) = driver.start().actions
    sent = json.loads(request.input or "")  # type: ignore[union-attr]
    assert (sent["method"], sent["uri"], sent["headers"]) == ("POST", TEST_URI, headers)
    assert isinstance(sent["content"], str) and json.loads(sent["content"]) == content
    done = driver.finish(0, {"statusCode": 200, "content": "", "headers": {}})
    assert done.status is Status.Completed


def test_call_http_with_a_managed_identity_is_refused(live: bool) -> None:
    """test_initial_post_state, test_post_completed_state: they send a
    ``ManagedIdentityTokenSource``. Documented difference (docs/azure-apps.md, not
    supported): managed identities are Azure's; the orchestration fails saying so, and no
    request is made."""
    from azure.durable_functions.models.TokenSource import ManagedIdentityTokenSource

    def post(context: df.DurableOrchestrationContext):
        token = ManagedIdentityTokenSource("https://management.core.windows.net/")
        yield context.call_http("POST", TEST_URI, content={"a": 1}, token_source=token)

    driver = SuiteDriver(df.Orchestrator.create(post), live_session=live)
    failed = driver.start()
    assert failed.status is Status.Failed and failed.actions == []
    assert flat(driver.sdk)[0]["httpRequest"]["tokenSource"]["resource"] == (
        "https://management.core.windows.net/")
    assert "token_source (managed identity) is Azure-only" in output(failed)


def test_call_http_202_is_polled(live: bool) -> None:
    """test_completed_state, answered 202 with a Location. Documented difference
    (docs/azure-apps.md): durable polls the Location (a timer, then a GET, under task IDs the
    SDK never uses) and the SDK gets the final answer; the 1.x SDK on Azure gets the 202."""
    from durable.azure.http_polling import POLL_BASE

    def get(context: df.DurableOrchestrationContext):
        return (yield context.call_http("GET", TEST_URI))["statusCode"]

    driver = SuiteDriver(df.Orchestrator.create(get), live_session=live)
    driver.start()
    waiting = driver.finish(0, {"statusCode": 202, "content": "",
                                "headers": {"Location": TEST_URI, "Retry-After": "1"}})
    assert waiting.actions == [ScheduleTimer(POLL_BASE, driver.now + 1)]
    assert not driver.sdk["isDone"]
    (poll,) = driver.fire(POLL_BASE).actions
    assert isinstance(poll, ScheduleActivity) and poll.task_id == POLL_BASE + 1
    done = driver.finish(POLL_BASE + 1, {"statusCode": 200, "content": "{}", "headers": {}})
    assert done.status is Status.Completed and output(done) == driver.sdk["output"] == 200

