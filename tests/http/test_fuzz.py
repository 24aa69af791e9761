"""Fuzz the management API of a real ``durable run`` from its own OpenAPI document.

Every operation gets schema-valid (positive) and schema-violating (negative) requests generated
by schemathesis. Whatever they contain, the server must never answer 5xx, and every response
must match the document (status code, content type, JSON schema, headers). Hypothesis runs
derandomized, so the requests are the same on every run: the test cannot be flaky.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.generation import GenerationMode

from tests.http.conftest import MGMT, DurableRun

EXAMPLES_PER_OPERATION_AND_MODE = 30
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
APP = Path(__file__).with_name("sample_app.py")


def test_the_management_api_survives_fuzzing(tmp_path: Path) -> None:
    storage = {"DURABLE_STORAGE": f"sqlite:///{tmp_path / 'fuzz.db'}"}  # storage from the env
    with DurableRun(APP, env=storage) as server:
        base = f"{server.base}{MGMT}"
        # Something to find: a running instance and a finished one.
        httpx.post(f"{base}/orchestrators/wait_for_go/fuzz-running", timeout=10)
        httpx.post(f"{base}/orchestrators/echo/fuzz-done", json=[1], timeout=10)
        httpx.post(f"{base}/entities/counter/fuzz", params={"op": "add"}, json=2, timeout=10)
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        sent = 0
        operations = 0
        no_negative: list[str] = []
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def fuzz(case: schemathesis.Case) -> None:
                    nonlocal sent
                    response = case.call(base_url=base, timeout=10)
                    sent += 1
                    case.validate_response(response, checks=CHECKS)

                try:
                    fuzz()
                except Unsatisfiable:
                    # Nothing in this operation can be made schema-invalid (e.g. no parameters).
                    assert mode is GenerationMode.NEGATIVE, operation.label
                    no_negative.append(operation.label)
        print(f"\nfuzzed {operations} operations with {sent} requests "
              f"(no negative cases possible for: {', '.join(no_negative) or 'none'})")
        assert operations == 17  # every operation of the document (openapi.json is not in it)
        assert sent >= operations * 10
        # The server is still healthy afterwards, and the seeded instance is intact.
        status = httpx.get(f"{base}/instances/fuzz-running", timeout=10)
        assert status.status_code in (202, 404)  # a fuzzed purge may have removed it
        assert server.stop() == 0, server.output()
        assert str(tmp_path / "fuzz.db") in server.output()
        assert "Traceback" not in server.output(), server.output()
