"""Orchestration versioning on a real Host: default versions, context.version, and the match
and failure strategies of a worker."""

from __future__ import annotations

import pytest

import durable as df
from durable.versioning import VersionMatch, can_run, compare_versions
from tests.e2e.conftest import running

Status = df.OrchestrationRuntimeStatus


def versioned_app(version: str | None, match: str = "none", failure: str = "reject"
                  ) -> df.DFApp:
    app = df.DFApp(default_version=version, version_match_strategy=match,
                   version_failure_strategy=failure)

    @app.orchestration_trigger(context_name="context")
    def which(context: df.DurableOrchestrationContext):
        if context.version and compare_versions(context.version, "2.0") >= 0:
            child = yield context.call_sub_orchestrator("child")
            return ["new path", context.version, child]
        return ["old path", context.version]

    @app.orchestration_trigger(context_name="context")
    def child(context: df.DurableOrchestrationContext):
        return context.version

    return app


def test_versions_compare_as_numbers_when_they_are() -> None:
    assert compare_versions("1.10", "1.9") == 1
    assert compare_versions("2", "2.0") == 0
    assert compare_versions(None, "1.0") == -1 and compare_versions("b", "a") == 1
    assert can_run("1.0", "2.0", VersionMatch.CURRENT_OR_OLDER)
    assert not can_run("2.1", "2.0", VersionMatch.CURRENT_OR_OLDER)
    assert not can_run("1.0", "2.0", VersionMatch.STRICT) and can_run("9", None, VersionMatch.NONE)
    with pytest.raises(df.InvalidInputError):
        df.DFApp(version_match_strategy="sometimes")


async def test_the_default_version_is_given_to_starts_and_children(db_url: str) -> None:
    async with running(versioned_app("2.0"), db_url) as host:
        new = await host.client.start_new("which")
        old = await host.client.start_new("which", client_input=None, version="1.0")
        assert (await host.client.wait_for_completion(new, timeout=20)).output == [
            "new path", "2.0", "2.0"]
        assert (await host.client.wait_for_completion(old, timeout=20)).output == [
            "old path", "1.0"]


async def test_a_worker_leaves_newer_versions_for_another_worker(db_url: str) -> None:
    async with running(versioned_app("1.0", "current-or-older"), db_url) as old_worker:
        mine = await old_worker.client.start_new("which", version="1.0")
        newer = await old_worker.client.start_new("which", version="2.0")
        assert (await old_worker.client.wait_for_completion(mine, timeout=20)).output == [
            "old path", "1.0"]
        # The 2.0 instance waits, untouched, for a worker that runs 2.0 ...
        status = await old_worker.client.get_status(newer)
        assert status.runtime_status is Status.Pending
        async with running(versioned_app("2.0", "current-or-older"), db_url,
                           run_worker=True) as new_worker:
            done = await new_worker.client.wait_for_completion(newer, timeout=30)
    assert done.output == ["new path", "2.0", "2.0"]  # ... which then runs it


async def test_the_fail_strategy_fails_a_mismatched_instance(db_url: str) -> None:
    async with running(versioned_app("2.0", "strict", "fail"), db_url) as host:
        other = await host.client.start_new("which", version="1.0")
        status = await host.client.wait_for_completion(other, timeout=20)
    assert status.runtime_status is Status.Failed
    assert status.failure_details["errorType"] == "durable.errors.VersionMismatchError"
    assert "version 1.0, which a worker of version 2.0 does not run" in (
        status.failure_details["message"])
