"""Loading Functions projects: both layouts, host.json and local.settings.json, and errors a
user can act on (the function and binding named; their own traceback, not durable's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable.app import AuthLevel, FunctionKind
from durable.azure import load_project
from durable.azure.app import AzureFunctionsApp, UnsupportedBindingError
from durable.azure.functions import AppLoadError
from durable.azure.project import (
    HostSettings,
    ProjectError,
    host_config,
    read_project,
    storage_hub,
)
from durable.errors import InvalidInputError
from durable.loader import load_app, storage_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "azure"


def write(root: Path, files: dict[str, str | dict]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(content) if isinstance(content, dict) else textwrap.dedent(content)
        path.write_text(text)
    return root


HOST = {"version": "2.0"}
ACTIVITY = {"bindings": [{"name": "name", "type": "activityTrigger", "direction": "in"}]}


def test_v1_layout(tmp_path: Path) -> None:
    write(tmp_path, {
        "host.json": {"version": "2.0", "extensions": {
            "http": {"routePrefix": "v1"},
            "durableTask": {"hubName": "%HUB%", "defaultVersion": "3.1"}}},
        "local.settings.json": {"Values": {"HUB": "MyHub", "GREETING": "Hi",
                                           "ROUTE": "greet"}},
        "shared_code/__init__.py": "",
        "shared_code/words.py": "def greet(name):\n    import os\n"
                                "    return os.environ['GREETING'] + ' ' + name\n",
        "Greet/function.json": ACTIVITY,
        "Greet/__init__.py": """
            from ..shared_code.words import greet
            def main(name: str) -> str:
                return greet(name)
        """,
        "Start/function.json": {"bindings": [
            {"name": "req", "type": "httpTrigger", "direction": "in", "route": "%ROUTE%/{x}",
             "methods": ["post", "get"], "authLevel": "anonymous"},
            {"name": "starter", "type": "durableClient", "direction": "in"},
            {"name": "$return", "type": "http", "direction": "out"}]},
        "Start/__init__.py": "async def main(req, starter):\n    return 'ok'\n",
        "Flow/function.json": {"scriptFile": "flow.py", "entryPoint": "run", "bindings": [
            {"name": "context", "type": "orchestrationTrigger", "direction": "in"}]},
        "Flow/flow.py": """
            import azure.durable_functions as df
            def orchestrator(context):
                return (yield context.call_activity("Greet", "you"))
            run = df.Orchestrator.create(orchestrator)
        """,
        "Off/function.json": {"disabled": True, **ACTIVITY},
        "Off/__init__.py": "raise RuntimeError('a disabled function is not imported')\n",
    })
    app = load_project(tmp_path)
    assert isinstance(app, AzureFunctionsApp)
    assert app.route_prefix == "v1"
    assert app.project.hub_name == "MyHub" and app.default_version == "3.1"
    assert os.environ["GREETING"] == "Hi"  # local.settings.json Values are the environment
    assert set(app.activities) == {"Greet"} and set(app.orchestrators) == {"Flow"}
    assert app.activities["Greet"].fn("Ada") == "Hi Ada"  # the relative import worked
    (route,) = app.http_functions
    assert route.route == "greet/{x}" and route.methods == ["POST", "GET"]
    assert route.auth_level is AuthLevel.ANONYMOUS
    assert app.orchestrators["Flow"].runtime_factory is not None
    pg = storage_for(app, tmp_path, "postgresql://u@h/db")
    assert pg == "postgresql://u@h/db?hub=myhub"


def test_v2_layout_with_a_blueprint_in_a_plain_function_app(tmp_path: Path) -> None:
    write(tmp_path, {
        "host.json": HOST,
        "function_app.py": """
            import azure.functions as func
            from parts import bp
            app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
            app.register_functions(bp)

            @app.route(route="hello")
            def hello(req: func.HttpRequest) -> func.HttpResponse:
                return func.HttpResponse("hi")

            @app.timer_trigger(schedule="0 */5 * * * *", arg_name="t", run_on_startup=True)
            def tick(t: func.TimerRequest) -> None:
                pass
        """,
        "parts.py": """
            import azure.durable_functions as df
            bp = df.Blueprint()

            @bp.orchestration_trigger(context_name="context", orchestration="Renamed")
            def orch(context):
                return (yield context.call_activity("act", 1))

            @bp.activity_trigger(input_name="n")
            async def act(n):
                return n + 1
        """,
    })
    app = load_project(tmp_path)
    assert set(app.orchestrators) == {"Renamed"}
    assert app.activities["act"].is_async
    (route,) = app.http_functions
    assert route.route == "hello" and route.methods is None
    assert route.auth_level is AuthLevel.FUNCTION
    (timer,) = app.timer_functions
    assert timer.kind is FunctionKind.TIMER
    assert timer.extra == {"schedule": "0 */5 * * * *", "run_on_startup": True,
                           "use_monitor": None}


def test_the_examples_load(tmp_path: Path) -> None:
    patterns = load_project(EXAMPLES / "patterns_v2")
    assert {"hello_sequence", "backup_site_content", "monitor_issues", "phone_verification",
            "resilient_parent", "resilient_child"} <= set(patterns.orchestrators)
    singleton = load_project(EXAMPLES / "singleton_v1")
    assert set(singleton.orchestrators) == {"SingletonJob"}
    assert [r.route for r in singleton.http_functions] == [
        "orchestrators/{functionName}/{instanceId}"]


def test_unsupported_bindings_name_the_function_and_the_binding(tmp_path: Path) -> None:
    write(tmp_path, {
        "host.json": HOST,
        "SendSms/function.json": {"bindings": [
            {"name": "phoneNumber", "type": "activityTrigger", "direction": "in"},
            {"name": "message", "type": "twilioSms", "direction": "out",
             "from": "%TwilioPhoneNumber%"}]},
        "SendSms/__init__.py": "def main(phoneNumber, message):\n    pass\n",
        "Queue/function.json": {"bindings": [
            {"name": "msg", "type": "queueTrigger", "direction": "in", "queueName": "q"}]},
        "Queue/__init__.py": "def main(msg):\n    pass\n",
    })
    with pytest.raises(UnsupportedBindingError) as caught:
        load_project(tmp_path)
    message = str(caught.value)
    assert "function 'SendSms': binding 'message' of type 'twilioSms' (out)" in message
    assert "function 'Queue': binding 'msg' of type 'queueTrigger' (in)" in message


def test_entities_load_in_both_layouts() -> None:
    app = load_project(EXAMPLES / "counter_entity_v2")
    assert set(app.entities) == {"Counter"}
    assert app.entities["Counter"].kind is FunctionKind.ENTITY


def test_an_import_error_shows_the_users_traceback(tmp_path: Path) -> None:
    write(tmp_path, {
        "host.json": HOST,
        "function_app.py": """
            import azure.functions as func
            app = func.FunctionApp()

            def helper():
                return undefined_name

            CONFIG = helper()
        """,
    })
    with pytest.raises(AppLoadError) as caught:
        load_project(tmp_path)
    message = str(caught.value)
    assert "Importing function_app.py failed" in message
    assert 'function_app.py", line 6, in helper' in message
    assert "NameError: name 'undefined_name' is not defined" in message
    assert "durable/" not in message and "importlib" not in message


def test_a_syntax_error_in_a_v1_function_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, {
        "host.json": HOST,
        "Broken/function.json": ACTIVITY,
        "Broken/__init__.py": "def main(name):\n    return (\n",
    })
    with pytest.raises(AppLoadError) as caught:
        load_project(tmp_path)
    message = str(caught.value)
    assert "Importing function 'Broken' (Broken/__init__.py) failed" in message
    assert "SyntaxError" in message and "__init__.py" in message


def test_bad_projects(tmp_path: Path) -> None:
    write(tmp_path / "empty", {"host.json": HOST})
    with pytest.raises(ProjectError, match="has no functions"):
        load_project(tmp_path / "empty")
    write(tmp_path / "badjson", {"host.json": "{not json", "A/function.json": ACTIVITY})
    (tmp_path / "badjson" / "host.json").write_text("{not json")
    with pytest.raises(ProjectError, match=r"host\.json is not valid JSON"):
        load_project(tmp_path / "badjson")
    write(tmp_path / "noentry", {"host.json": HOST, "A/function.json": ACTIVITY,
                                 "A/__init__.py": "x = 1\n"})
    with pytest.raises(AppLoadError, match="has no callable 'main'"):
        load_project(tmp_path / "noentry")
    write(tmp_path / "unset", {"host.json": HOST, "T/function.json": {"bindings": [
        {"name": "t", "type": "timerTrigger", "direction": "in",
         "schedule": "%NOT_SET_ANYWHERE%"}]}, "T/__init__.py": "def main(t):\n    pass\n"})
    with pytest.raises(ProjectError, match=r"'NOT_SET_ANYWHERE'.*is not set"):
        load_project(tmp_path / "unset")


def test_folders_that_are_not_apps_say_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"no host\.json"):
        load_app(str(tmp_path))


def test_storage_hub_only_for_postgres_without_a_hub() -> None:
    assert storage_hub("sqlite:///x.db", "Hub") == "sqlite:///x.db"
    assert storage_hub("postgresql://h/db?hub=mine", "Hub") == "postgresql://h/db?hub=mine"
    assert storage_hub("postgresql://h/db?pool_max=4", "My-Hub") == (
        "postgresql://h/db?pool_max=4&hub=my_hub")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "durable.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_cli_prints_the_users_traceback_not_durables(tmp_path: Path) -> None:
    write(tmp_path, {"host.json": HOST, "function_app.py": "import no_such_module_here\n"})
    result = run_cli("run", ".", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert "Error: Importing function_app.py failed" in result.stderr
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in result.stderr
    assert "click" not in result.stderr and "durable/cli.py" not in result.stderr
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run_cli("run", ".", "--port", "0", cwd=plain)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no host.json" in result.stderr
    result = run_cli("worker", "no_module_by_this_name", cwd=plain)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "No module named 'no_module_by_this_name'" in result.stderr


async def test_a_native_apps_host_json_default_version(tmp_path: Path) -> None:
    """``import durable as df`` ports of the versioning sample read host.json's
    defaultVersion, so they take the documented branch."""
    write(tmp_path, {
        "host.json": {"version": "2.0", "extensions": {"durableTask": {"defaultVersion": "1.0"}}},
        "app.py": """
            import durable as df
            app = df.DFApp()

            @app.orchestration_trigger(context_name="context")
            def versioned(context):
                return context.version
                yield

            @app.orchestration_trigger(context_name="context")
            def parent(context):
                child = yield context.call_sub_orchestrator("versioned")
                explicit = yield context.call_sub_orchestrator("versioned", version="0.9")
                return [context.version, child, explicit]
        """,
    })
    import durable

    app, folder = load_app(str(tmp_path))
    assert app.default_version == "1.0"
    async with durable.Host(app, storage=f"sqlite:///{folder / 'v.db'}") as host:
        first = await host.client.start_new("versioned")
        second = await host.client.start_new("versioned", version="2.0")
        assert (await host.client.wait_for_completion(first, timeout=10)).output == "1.0"
        assert (await host.client.wait_for_completion(second, timeout=10)).output == "2.0"
        parent = await host.client.start_new("parent", version="2.0")
        status = await host.client.wait_for_completion(parent, timeout=10)
        assert status.output == ["2.0", "1.0", "0.9"]  # a child without a version: the default


def test_app_settings_override_host_json_keys() -> None:
    """``AzureFunctionsJobHost__<path>`` (or ``:``) overrides any host.json key, in any case,
    as the Functions host's configuration does; other names are left alone."""
    host = {"version": "2.0", "functions": ["a", "b"],
            "extensions": {"durableTask": {"hubName": "FromFile", "storageProvider": {}},
                           "http": {"routePrefix": "api"}}}
    merged = host_config(host, {
        "AzureFunctionsJobHost__extensions__durableTask__hubName": "FromSetting",
        "azurefunctionsjobhost:EXTENSIONS:HTTP:ROUTEPREFIX": "",
        "AzureFunctionsJobHost__extensions__durableTask__defaultVersion": "2.0",
        "AzureFunctionsJobHost__functions__1": "c",
        "AzureFunctionsJobHost__logging__logLevel__default": "Warning",
        "AzureFunctionsJobHost__extensions__durableTask__storageProvider": "ignored",
        "AzureFunctionsJobHost": "no path", "AzureFunctionsJobHost__": "empty path",
        "NotAzureFunctionsJobHost__version": "3.0",
    })
    assert merged == {"version": "2.0", "functions": ["a", "c"],
                      "extensions": {"durableTask": {"hubName": "FromSetting",
                                                     "storageProvider": {},
                                                     "defaultVersion": "2.0"},
                                     "http": {"routePrefix": ""}},
                      "logging": {"logLevel": {"default": "Warning"}}}
    assert host["extensions"]["durableTask"]["hubName"] == "FromFile"  # a copy was changed


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """Loading a project puts its Values into os.environ; take them out again, so that
    overrides of host.json do not reach the other tests' processes."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.usefixtures("restored_environment")
def test_the_override_reaches_every_key_durable_reads(tmp_path: Path) -> None:
    write(tmp_path, {
        "host.json": {"version": "2.0", "extensions": {"durableTask": {"hubName": "File"}}},
        "local.settings.json": {"Values": {
            "AzureFunctionsJobHost__extensions__durableTask__hubName": "%HUB_NAME%",
            "AzureFunctionsJobHost__extensions__http__routePrefix": "/from-settings/",
            "AzureFunctionsJobHost__extensions__durableTask__defaultVersion": "1.5",
            "HUB_NAME": "Resolved"}},
        "A/function.json": ACTIVITY, "A/__init__.py": "def main(name):\n    return name\n",
    })
    app = load_project(tmp_path)
    assert app.project.task_hub == "Resolved"  # %setting% references resolve, as in host.json
    assert app.route_prefix == "from-settings" and app.default_version == "1.5"
    assert storage_for(app, tmp_path, "postgresql://h/db") == "postgresql://h/db?hub=resolved"
    # A variable already in the environment wins over local.settings.json.
    setting = "AzureFunctionsJobHost__extensions__durableTask__hubName"  # the Values' name
    os.environ[setting] = "FromEnv"
    assert read_project(tmp_path).task_hub == "FromEnv"


def test_the_override_reaches_a_native_apps_default_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {
        "host.json": {"version": "2.0", "extensions": {"durableTask": {"defaultVersion": "1.0"}}},
        "app.py": "import durable as df\napp = df.DFApp()\n",
    })
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__durableTask__defaultVersion", "4.2")
    app, _ = load_app(str(tmp_path))
    assert app.default_version == "4.2"


def test_the_host_section_of_local_settings(tmp_path: Path) -> None:
    def host_of(section: object) -> HostSettings:
        write(tmp_path, {"host.json": HOST, "local.settings.json": {"Host": section}})
        return read_project(tmp_path).host

    assert host_of({"localhttpport": 7072, "CORS": " http://a.example ,*",
                    "CORSCredentials": "false", "LocalHttpAddress": "0.0.0.0"}) == HostSettings(
        local_http_port=7072, local_http_address="0.0.0.0", cors="http://a.example ,*",
        cors_credentials=False)
    assert host_of({"LocalHttpPort": "7073", "CORSCredentials": True}) == HostSettings(
        local_http_port=7073, cors_credentials=True)
    assert host_of({"LocalHttpPort": 0, "CORS": ""}) == HostSettings()  # 0: not set
    for bad, message in (({"LocalHttpPort": "x"}, "LocalHttpPort must be a port number"),
                         ({"LocalHttpPort": 70000}, "LocalHttpPort must be a port number"),
                         ({"CORS": ["http://a"]}, "CORS must be a string"),
                         ({"CORSCredentials": "yes"}, "CORSCredentials must be true or false"),
                         ("text", "'Host' must be a JSON object")):
        with pytest.raises(ProjectError, match=message):
            host_of(bad)


REPLAY_FLAGS_APP = """
    import azure.durable_functions as df
    import azure.functions as func

    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.orchestration_trigger(context_name="context")
    def flags(context: df.DurableOrchestrationContext):
        seen = [context.is_replaying]
        yield context.call_activity("echo", 1)
        seen.append(context.is_replaying)
        yield context.call_activity("echo", 2)
        return seen

    @app.activity_trigger(input_name="value")
    def echo(value: int) -> int:
        return value
"""


@pytest.mark.parametrize(("setting", "expected"), [
    # durable's default: a live session, replayed in full from the episode after the
    # orchestrator first reads is_replaying, so what it keeps is what Azure gives
    (None, [True, True]),
    (False, [True, True]),  # every episode a full replay, as on Azure by default
    ("false", [True, True]),  # an app setting override is text
    (True, [False, False]),  # Azure's extended sessions: the session is kept whatever it reads
])
async def test_extended_sessions_setting(
    tmp_path: Path, setting: object, expected: list[bool]
) -> None:
    """``extensions.durableTask.extendedSessionsEnabled``: unset, durable keeps an execution
    alive until it reads ``is_replaying``; ``false`` replays every episode in full; ``true``
    keeps it alive regardless, so a value computed from ``is_replaying`` keeps what it read."""
    durable_task = {} if setting is None else {"extendedSessionsEnabled": setting}
    project = write(tmp_path / "app", {
        "host.json": {"version": "2.0", "extensions": {"durableTask": durable_task}},
        "function_app.py": REPLAY_FLAGS_APP,
    })
    import durable
    from durable.azure import load_project

    app = load_project(project)
    assert app.project.extended_sessions is {None: None, True: True}.get(setting, False)
    async with durable.Host(app, storage=f"sqlite:///{tmp_path / 'f.db'}") as host:
        instance_id = await host.client.start_new("flags")
        status = await host.client.wait_for_completion(instance_id, timeout=20)
        assert status.output == expected


def test_extended_sessions_must_be_a_boolean(tmp_path: Path) -> None:
    project = write(tmp_path, {
        "host.json": {"version": "2.0",
                      "extensions": {"durableTask": {"extendedSessionsEnabled": "sometimes"}}},
        "function_app.py": REPLAY_FLAGS_APP,
    })
    from durable.azure.project import ProjectError, read_project

    with pytest.raises(ProjectError, match="extendedSessionsEnabled must be true or false"):
        read_project(project)
