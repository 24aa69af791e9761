"""The live SDK session's two departures from the plain protocol, checked against the SDK.

Every test of tests/azure/test_runtime.py already runs a live session beside a full replay
(tests/azure/driver.py); these check what that cannot: the timestamp reader against dateutil,
and that a session is offered only where the SDK has the parts it uses."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import azure.durable_functions as df
from dateutil.parser import parse as dateutil_parse

from durable.azure.protocol import iso
from durable.azure.session import (
    SdkSession,
    fast_timestamp,
    install_fast_timestamps,
    session_function,
    stamp,
)


def test_the_fast_timestamp_read_gives_what_dateutil_gives() -> None:
    read = fast_timestamp(dateutil_parse)
    moments = [0.0, 1.5, 1_700_000_000.000001, 1_700_000_000.999999, 4_102_444_799.5]
    moments += [random.Random(7).uniform(0, 4e9) for _ in range(2000)]
    for moment in moments:
        text = iso(moment)
        expected = dateutil_parse(text)
        for got in (read(text), read(stamp(moment))):
            assert got == expected and got.utcoffset() == expected.utcoffset()
            assert type(got.tzinfo) is type(expected.tzinfo)
        assert stamp(moment) == text  # the same text, whoever reads it
    for other in ("2024-01-02T03:04:05Z", "2024-01-02 03:04:05+02:00", "Jan 2 2024"):
        assert read(other) == dateutil_parse(other)  # anything else: dateutil itself


def test_fast_timestamps_are_installed_once() -> None:
    import importlib

    module = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")
    install_fast_timestamps()
    installed = module.dt_parse
    install_fast_timestamps()
    assert module.dt_parse is installed and installed.__wrapped__ is dateutil_parse
    assert installed(iso(0.0)) == datetime(1970, 1, 1, tzinfo=UTC)


def test_a_session_is_offered_only_for_an_orchestrator_create_handle() -> None:
    def orchestrator(context: df.DurableOrchestrationContext):
        yield context.call_activity("a")

    offered = session_function(df.Orchestrator.create(orchestrator))
    assert offered is not None and offered[0] is orchestrator
    assert session_function(orchestrator) is None  # a plain function (not wrapped)
    assert session_function(lambda context: df.Orchestrator.create(orchestrator)(context)) is None
    assert not SdkSession(*offered).started
