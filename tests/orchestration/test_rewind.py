"""The rewind plan on recorded histories: what runs again, what stays, and that replay agrees."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import durable as df
from durable.history import ExecutionRewound, HistoryEvent, TaskFailed
from durable.orchestration.rewind import plan_rewind
from durable.orchestration.runtime import OrchestrationRuntime
from durable.status import OrchestrationRuntimeStatus as Status
from tests.orchestration.test_replay import T0, Driver, done, failed, started

REWOUND = ExecutionRewound(timestamp=T0 + 100, reason="fixed")


def failed_history(orchestrator: Any, *episodes: list[HistoryEvent]) -> list[HistoryEvent]:
    driver = Driver(orchestrator)
    driver.step(started())
    for events in episodes:
        driver.step(*events)
    assert driver.history[-1].status == Status.Failed.value  # type: ignore[attr-defined]
    return driver.history


def resumed(orchestrator: Any, history: list[HistoryEvent]) -> OrchestrationRuntime:
    runtime = OrchestrationRuntime(orchestrator)
    runtime.replay(history)
    return runtime


def chain(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("a")
    second = yield context.call_activity("b", first)
    return second


def test_the_failed_activity_runs_again_and_the_completed_one_does_not() -> None:
    history = failed_history(chain, [done(0, 1)], [failed(1)])
    plan = plan_rewind(history, REWOUND)
    assert plan is not None
    assert [(t.event_id, t.name) for t in plan.activities] == [(1, "b")]
    assert not any(isinstance(e, TaskFailed) for e in plan.history)
    assert plan.history[-1] is REWOUND
    runtime = resumed(chain, plan.history)
    assert not runtime.is_done
    decision = runtime.run_episode([done(1, 2)], T0 + 200)
    assert decision.status is Status.Completed and decision.output == "2"
    assert decision.actions == []  # "b" was scheduled again by the plan, not by replay


def test_a_caught_failure_stays_and_only_the_last_one_runs_again() -> None:
    def careful(context: df.DurableOrchestrationContext):
        with contextlib.suppress(df.TaskFailedError):
            yield context.call_activity("flaky")
        return (yield context.call_activity("fallback"))

    history = failed_history(careful, [failed(0)], [failed(1)])
    plan = plan_rewind(history, REWOUND)
    assert plan is not None and [t.name for t in plan.activities] == ["fallback"]
    assert sum(isinstance(e, TaskFailed) for e in plan.history) == 1
    decision = resumed(careful, plan.history).run_episode([done(1, "ok")], T0 + 200)
    assert decision.output == '"ok"'


def test_every_failure_of_a_task_all_runs_again() -> None:
    def fan(context: df.DurableOrchestrationContext):
        a = context.call_activity("a")
        b = context.call_activity("b")
        c = context.call_activity("c")
        return (yield context.task_all([a, b, c]))

    # "a" fails first: task_all fails at once, and "c"'s answer, coming after the failure, was
    # dropped. Both must run again (c was still open), "b" need not.
    history = failed_history(fan, [done(1, "b")], [failed(0)])
    plan = plan_rewind(history, REWOUND)
    assert plan is not None and sorted(t.name for t in plan.activities) == ["a", "c"]
    decision = resumed(fan, plan.history).run_episode([done(0, "a"), done(2, "c")], T0 + 200)
    assert json.loads(decision.output or "") == ["a", "b", "c"]


def test_a_failed_sub_orchestration_is_rewound_with_its_parent() -> None:
    def parent(context: df.DurableOrchestrationContext):
        return (yield context.call_sub_orchestrator("child", 1, instance_id="kid"))

    from durable.history import SubOrchestrationInstanceFailed

    failure = SubOrchestrationInstanceFailed(
        timestamp=T0, task_scheduled_id=0, failure=df.FailureDetails("ValueError", "no"))
    history = failed_history(parent, [failure])
    plan = plan_rewind(history, REWOUND)
    assert plan is not None and [c.instance_id for c in plan.sub_orchestrations] == ["kid"]
    assert plan.activities == []


def test_an_orchestrator_that_raised_is_simply_run_again() -> None:
    def raises(context: df.DurableOrchestrationContext):
        value = yield context.call_activity("a")
        if value < 0:
            raise ValueError("negative")
        return value

    history = failed_history(raises, [done(0, -1)])
    plan = plan_rewind(history, REWOUND)
    assert plan is not None and plan.activities == [] and plan.sub_orchestrations == []
    assert resumed(raises, plan.history).is_done  # same data, same failure


def test_timers_still_open_at_the_failure_are_set_again() -> None:
    from datetime import timedelta

    def race(context: df.DurableOrchestrationContext):
        deadline = context.create_timer(timedelta(hours=1))
        work = context.call_activity("work")
        winner = yield context.task_any([work, deadline])
        return (yield winner)

    history = failed_history(race, [failed(1)])
    plan = plan_rewind(history, REWOUND)
    assert plan is not None
    assert [t.event_id for t in plan.timers] == [0]
    assert [t.name for t in plan.activities] == ["work"]


def test_only_failed_histories_have_a_plan() -> None:
    driver = Driver(chain)
    driver.step(started())
    assert plan_rewind(driver.history, REWOUND) is None
    driver.step(done(0, 1))
    driver.step(done(1, 2))
    assert plan_rewind(driver.history, REWOUND) is None  # completed
