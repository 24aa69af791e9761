"""What a Functions project's settings change in ``durable run``, over real HTTP against real
processes: local.settings.json's ``Host`` section (CORS, CORSCredentials, LocalHttpPort) and
the ``AzureFunctionsJobHost__<path>`` app settings that override host.json (the task hub, on
SQLite and on PostgreSQL), as Core Tools and the Functions host read them.

The project is tests/azure/apps/host_settings_v2, copied per test, with the local.settings.json
each test writes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.azure.conftest import APPS, TIMEOUT, copy_project, finished, start
from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV
from tests.http.conftest import MGMT, REPO, DurableRun

PROJECT = APPS / "host_settings_v2"
HUB_SETTING = "AzureFunctionsJobHost__extensions__durableTask__hubName"
ALLOWED = "http://localhost:3000"
OTHER_ALLOWED = "https://App.Example"  # listed with capitals: origins compare ignoring case


def project(tmp_path: Path, values: dict[str, str] | None = None,
            host: dict[str, Any] | None = None) -> Path:
    """A copy of the project with this local.settings.json."""
    root = copy_project(PROJECT, tmp_path)
    settings: dict[str, Any] = {"IsEncrypted": False, "Values": values or {}}
    if host is not None:
        settings["Host"] = host
    (root / "local.settings.json").write_text(json.dumps(settings))
    return root


def hub_of(base: str, prefix: str = "api") -> str:
    response = httpx.get(f"{base}/{prefix}/hub", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["taskHubName"]


def preflight(url: str, origin: str, method: str = "POST",
              headers: str | None = None) -> httpx.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return httpx.request("OPTIONS", url, headers=asked, timeout=TIMEOUT)


# -- CORS ---------------------------------------------------------------------------------------


def test_cors_with_credentials_from_local_settings(tmp_path: Path) -> None:
    root = project(tmp_path, host={"CORS": f"{ALLOWED}, {OTHER_ALLOWED}",
                                   "CORSCredentials": True})
    with DurableRun(root, cwd=root) as server:
        base = server.base
        assert f"CORS: {ALLOWED},{OTHER_ALLOWED.lower()} (with credentials)" in server.output()
        # A preflight is answered before any route or key check, for every part of the server.
        for url in (f"{base}/api/orchestrators/greeter", f"{base}{MGMT}/instances/x/terminate",
                    f"{base}/admin/functions/nightly", f"{base}/no/such/route"):
            answer = preflight(url, ALLOWED, headers="content-type, x-functions-key")
            assert answer.status_code == 204 and answer.content == b"", url
            assert answer.headers["access-control-allow-origin"] == ALLOWED
            assert answer.headers["access-control-allow-credentials"] == "true"
            assert answer.headers["access-control-allow-methods"] == "POST"
            assert answer.headers["access-control-allow-headers"] == (
                "content-type,x-functions-key")
            assert answer.headers["vary"] == "Origin"
        other = preflight(f"{base}/api/hub", "https://app.example", method="GET")
        assert other.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-headers" not in other.headers  # none were asked for

        # Not the dashboard: its guard against cross-site actions is a preflight nobody
        # answers, whatever the CORS settings.
        dashboard = preflight(f"{base}/dashboard/", ALLOWED, headers="x-durable-dashboard")
        assert dashboard.status_code != 204
        assert "access-control-allow-origin" not in dashboard.headers
        assert "access-control-allow-origin" not in httpx.get(
            f"{base}/dashboard/", headers={"Origin": ALLOWED}, timeout=TIMEOUT).headers

        refused = preflight(f"{base}/api/orchestrators/greeter", "http://evil.example")
        assert refused.status_code == 204
        assert not any(name.startswith("access-control-") for name in refused.headers)

        # Actual requests: the user route, the management API it links to, the admin API,
        # and errors all carry the headers for an allowed origin.
        started = httpx.post(f"{base}/api/orchestrators/greeter", content='"Ann"',
                             headers={"Origin": ALLOWED}, timeout=TIMEOUT)
        assert started.status_code == 202
        assert started.headers["access-control-allow-origin"] == ALLOWED
        assert started.headers["access-control-allow-credentials"] == "true"
        done = finished(started.json())
        assert done["output"] == "Hello Ann!"
        for response in (
            httpx.get(started.json()["statusQueryGetUri"], headers={"Origin": ALLOWED},
                      timeout=TIMEOUT),
            httpx.post(f"{base}/admin/functions/greet", json={"input": '"Cy"'},
                       headers={"Origin": ALLOWED}, timeout=TIMEOUT),
            httpx.get(f"{base}/api/nothing-here", headers={"Origin": ALLOWED}, timeout=TIMEOUT),
            # OPTIONS that is no preflight goes to the routes (none takes OPTIONS: 404).
            httpx.request("OPTIONS", f"{base}/api/hub", headers={"Origin": ALLOWED},
                          timeout=TIMEOUT),
        ):
            assert response.status_code in (200, 202, 404), response.text
            assert response.headers["access-control-allow-origin"] == ALLOWED, response.url
            assert response.headers["access-control-allow-credentials"] == "true"
        assert httpx.request("OPTIONS", f"{base}/api/hub", headers={"Origin": ALLOWED},
                             timeout=TIMEOUT).status_code == 404

        # No Origin, or an origin not listed: no CORS headers.
        plain = httpx.get(f"{base}/api/hub", timeout=TIMEOUT)
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
        foreign = httpx.get(f"{base}/api/hub", headers={"Origin": "http://evil.example"},
                            timeout=TIMEOUT)
        assert foreign.status_code == 200
        assert "access-control-allow-origin" not in foreign.headers


def test_cors_any_origin_from_the_command_line(tmp_path: Path) -> None:
    """``--cors '*'`` on a native app: ``*`` is answered, without credentials or Vary."""
    with DurableRun("tests.http.sample_app:app", "--cors", "*", "--storage",
                    f"sqlite:///{tmp_path / 'cors.db'}") as server:
        answer = preflight(f"{server.base}/api/start/echo", "https://anywhere.example",
                           headers="content-type")
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
        assert "vary" not in answer.headers
        response = httpx.get(f"{server.base}/api/anonymous",
                             headers={"Origin": "https://anywhere.example"}, timeout=TIMEOUT)
        assert response.text == "anonymous ok"
        assert response.headers["access-control-allow-origin"] == "*"


def test_credentials_with_any_origin_refuse_to_start(tmp_path: Path) -> None:
    """The CORS protocol forbids it; Core Tools does not start either."""
    root = project(tmp_path, host={"CORS": "*", "CORSCredentials": True})
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    environment["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "durable.cli", "run", str(root), "--port", "0"],
        capture_output=True, text=True, cwd=root, env=environment, timeout=TIMEOUT * 2,
    )
    assert result.returncode != 0
    assert "credentials cannot be allowed for any origin ('*')" in result.stderr
    assert not (root / "durable.db").exists()  # refused before storage was opened


# -- LocalHttpPort --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_local_http_port_and_address_are_the_defaults(tmp_path: Path) -> None:
    port = _free_port()
    # 127.0.0.2: a loopback address that is not the default one (keys stay off).
    root = project(tmp_path, host={"LocalHttpPort": port, "LocalHttpAddress": "127.0.0.2"})
    with DurableRun(root, cwd=root, port=None) as server:
        assert server.base == f"http://127.0.0.2:{port}"
        assert "Keys: not required" in server.output()
        assert hub_of(server.base) == "FromHostJson"
    # The command line wins: --port 0 (a free port), --host 127.0.0.1.
    with DurableRun(root, "--host", "127.0.0.1", cwd=root) as server:
        assert server.base.startswith("http://127.0.0.1:")
        assert server.base != f"http://127.0.0.1:{port}"


def test_website_hostname_is_where_it_listens(tmp_path: Path) -> None:
    """As Core Tools sets it for func start, before the code is imported: an orchestration
    that call_http's its own app at WEBSITE_HOSTNAME reaches this process."""
    port = _free_port()
    root = project(tmp_path, host={"LocalHttpPort": port, "LocalHttpAddress": "127.0.0.2"})
    with DurableRun(root, cwd=root, port=None) as server:
        done = finished(start(server.base, "call_myself"))
        assert done["output"] == [f"127.0.0.2:{port}", 200, {"taskHubName": "FromHostJson"}]
    # A value in local.settings.json (or the environment) wins.
    root = project(tmp_path / "set", values={"WEBSITE_HOSTNAME": f"127.0.0.1:{port}"},
                   host={"LocalHttpPort": port})
    with DurableRun(root, cwd=root, port=None) as server:
        done = finished(start(server.base, "call_myself"))
        assert done["output"][:2] == [f"127.0.0.1:{port}", 200]


# -- AzureFunctionsJobHost__ overrides of host.json -------------------------------------------


def test_app_settings_override_host_json_on_sqlite(tmp_path: Path) -> None:
    root = project(tmp_path, values={
        HUB_SETTING: "SettingsHub",
        "AzureFunctionsJobHost:extensions:http:routePrefix": "v2",  # ':' separates too
    })
    with DurableRun(root, cwd=root) as server:
        assert hub_of(server.base, "v2") == "SettingsHub"
        assert "/v2/orchestrators/{functionName}" in server.output()
        payload = start(server.base, "greeter", "Bo", prefix="v2")
        assert "taskHub=SettingsHub" in payload["statusQueryGetUri"]
        assert finished(payload)["output"] == "Hello Bo!"
        assert httpx.get(f"{server.base}/api/hub", timeout=TIMEOUT).status_code == 404
        # The management API's own start names the same hub as the app's client binding.
        direct = httpx.post(f"{server.base}{MGMT}/orchestrators/greeter", json="Al",
                            timeout=TIMEOUT)
        assert direct.status_code == 202, direct.text
        assert "taskHub=SettingsHub" in direct.json()["statusQueryGetUri"]
    # The environment wins over local.settings.json, and names ignore case.
    env = {"AZUREFUNCTIONSJOBHOST__Extensions__DurableTask__HUBNAME": "EnvironmentHub"}
    with DurableRun(root, cwd=root, env=env) as server:
        assert hub_of(server.base, "v2") == "EnvironmentHub"


def test_two_apps_with_different_hubs_do_not_share_one_on_postgres(tmp_path: Path) -> None:
    from tests.pg import run_database_url

    url = run_database_url(os.environ.get(PG_URL_ENV, PG_DEFAULT_URL))  # names no hub
    tag = uuid.uuid4().hex[:8]
    hubs = [f"HubA{tag}", f"HubB{tag}"]
    roots = [project(tmp_path / name, values={HUB_SETTING: name}) for name in hubs]
    with DurableRun(roots[0], "--storage", url, cwd=roots[0]) as first, \
            DurableRun(roots[1], "--storage", url, cwd=roots[1]) as second:
        assert f"hub={hubs[0].lower()}" in first.output()  # the storage line names the schema
        assert [hub_of(first.base), hub_of(second.base)] == hubs
        payload = start(first.base, "greeter", "Di")
        assert f"taskHub={hubs[0]}" in payload["statusQueryGetUri"]
        assert finished(payload)["output"] == "Hello Di!"
        instance = f"{MGMT}/instances/{payload['id']}"
        assert httpx.get(f"{first.base}{instance}", timeout=TIMEOUT).status_code == 200
        assert httpx.get(f"{second.base}{instance}", timeout=TIMEOUT).status_code == 404
        listed = httpx.get(f"{second.base}{MGMT}/instances", timeout=TIMEOUT).json()
        assert payload["id"] not in {item["instanceId"] for item in listed}

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        schemas = {row[0] for row in conn.execute(
            "SELECT schema_name FROM information_schema.schemata")}
    assert {hub.lower() for hub in hubs} <= schemas
