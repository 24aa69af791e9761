"""durable.testing.replay: stored histories against today's code.

The corpus (tests/testing/corpus, recorded from every example by ``record_corpus.py``) must
replay cleanly against the examples as they are; changed code must be caught, naming both the
recorded and the new call.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

import durable as df
from durable.testing import export_history, read_history_file, replay

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).with_name("corpus")


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}",
                                                  REPO / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus_of(name: str) -> list[Path]:
    return sorted(CORPUS.glob(f"{name}--*.json"))


@pytest.mark.parametrize("name", sorted({p.name.split("--")[0] for p in CORPUS.glob("*.json")}))
def test_the_corpus_replays_against_the_examples(name: str) -> None:
    report = replay(example(name).app, corpus_of(name))
    assert report.replayed == len(corpus_of(name)) > 0
    assert report.ok, str(report)


def test_every_example_script_has_recorded_histories() -> None:
    scripts = {p.stem for p in (REPO / "examples").glob("*.py")}
    recorded = {p.name.split("--")[0] for p in CORPUS.glob("*.json")}
    assert scripts == recorded


@pytest.fixture
def chaining_history(tmp_path: Path) -> Path:
    return corpus_of("function_chaining")[0]


def test_a_renamed_activity_is_reported_with_both_calls(chaining_history: Path) -> None:
    def hello_sequence(context: df.DurableOrchestrationContext):
        a = yield context.call_activity("greet", "Tokyo")  # was say_hello
        return [a]

    [problem] = replay({"hello_sequence": hello_sequence}, [chaining_history]).problems
    assert problem.expected == "call_activity('say_hello')"
    assert problem.actual == "call_activity('greet')"
    assert str(chaining_history) in str(problem)


def test_a_reordered_call_is_reported() -> None:
    history = corpus_of("human_interaction")[0]

    def approval_workflow(context: df.DurableOrchestrationContext):
        timeout = context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
        yield context.call_activity("request_approval", context.get_input())
        yield timeout

    [problem] = replay({"approval_workflow": approval_workflow}, [history]).problems
    assert problem.expected and problem.actual and problem.expected != problem.actual
    assert "create_timer" in (problem.actual or "") + (problem.expected or "")


def test_a_removed_timer_is_reported() -> None:
    history = corpus_of("monitor")[0]
    monitor = example("monitor")

    def job_monitor(context: df.DurableOrchestrationContext):  # the loop without its timer
        job = context.get_input()
        checks = 0
        while True:
            state = yield context.call_activity("get_job_state", job["id"])
            checks += 1
            context.set_custom_status({"checks": checks, "last_state": state})
            if state == "done":
                yield context.call_activity("send_alert", f"job {job['id']} finished")
                return {"job": job["id"], "state": state, "checks": checks}

    report = replay({"job_monitor": job_monitor}, [history])
    [problem] = report.problems
    assert problem.expected == "create_timer"
    assert problem.actual == "call_activity('get_job_state')"
    assert replay(monitor.app, [history]).ok  # the real code still replays


def test_history_files_are_versioned(tmp_path: Path) -> None:
    good = export_history("i", "orch", "e", "Running", [])
    path = tmp_path / "h.json"
    path.write_text(json.dumps(good))
    instance, events = read_history_file(path)
    assert instance["instanceId"] == "i" and events == []
    for broken in ({**good, "version": 99}, {**good, "format": "other"}, "[1,"):
        path.write_text(broken if isinstance(broken, str) else json.dumps(broken))
        with pytest.raises(df.InvalidInputError):
            read_history_file(path)


def test_an_unknown_orchestrator_is_a_problem(chaining_history: Path) -> None:
    report = replay({"something_else": lambda context: None}, [chaining_history])
    assert not report.ok and "no orchestrator named 'hello_sequence'" in str(report)



def _cut_after_second_result(history: Path, to: Path) -> Path:
    """The history as it stood while the third call was still running."""
    instance, events = read_history_file(history)
    results = [i for i, e in enumerate(events) if type(e).__name__ == "TaskCompleted"]
    kept = events[: results[1] + 1]
    to.write_text(json.dumps(export_history(
        str(instance["instanceId"]), str(instance["name"]), str(instance.get("executionId", "e")),
        "Running", kept)))
    return to


def test_code_that_now_raises_is_reported_for_unfinished_and_completed_histories(
        chaining_history: Path, tmp_path: Path) -> None:
    def hello_sequence(context: df.DurableOrchestrationContext):
        a = yield context.call_activity("say_hello", "Tokyo")
        b = yield context.call_activity("say_hello", "Seattle")
        raise KeyError(f"lost {a} and {b}")  # a regression: it used to go on

    unfinished = _cut_after_second_result(chaining_history, tmp_path / "cut.json")
    for history in (unfinished, chaining_history):
        [problem] = replay({"hello_sequence": hello_sequence}, [history]).problems
        assert problem.message == "the code now fails"
        assert problem.actual is not None and "KeyError" in problem.actual
    # The real code replays both cleanly.
    chaining = example("function_chaining")
    assert replay(chaining.app, [unfinished, chaining_history]).ok


def test_apps_run_through_the_azure_sdk_are_not_passed_unchecked(chaining_history: Path) -> None:
    pytest.importorskip("azure.durable_functions", reason="the azure extra is not installed")
    from durable.azure import load_project

    app = load_project(REPO / "examples" / "azure" / "patterns_v2")
    [problem] = replay(app, [chaining_history]).problems
    assert "Azure SDK" in problem.message
