"""An Azure Functions project folder: ``host.json``, ``local.settings.json``, its layout.

What is read, as the Functions host and Core Tools read it:

- ``host.json``: ``extensions.http.routePrefix`` (default ``api``), ``extensions.durableTask``
  ``hubName`` and ``defaultVersion``. Other settings are accepted and ignored (logging,
  extension bundles, ...). Every key can be overridden by an app setting named
  ``AzureFunctionsJobHost__<path>`` (``__`` or ``:`` between the keys, any case), as the
  Functions host's configuration does: :func:`host_config` is that one merged view.
- ``local.settings.json``: ``Values`` become environment variables before any user code is
  imported (a variable already set in the environment wins, so a deployment can override a
  local value). ``Host`` holds what Core Tools reads for ``func start``: ``LocalHttpPort``,
  ``LocalHttpAddress``, ``CORS``, ``CORSCredentials`` (:class:`HostSettings`).
- Layout: ``function_app.py`` (or ``$PYTHON_SCRIPTFILE``) is the v2 decorator model; otherwise
  every direct subfolder with a ``function.json`` is a v1 function.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durable.errors import InvalidInputError

HOST_JSON = "host.json"
LOCAL_SETTINGS = "local.settings.json"
DEFAULT_SCRIPT = "function_app.py"
DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_HUB = "TestHubName"  # what Core Tools calls the hub when host.json names none
_SETTING_REF = re.compile(r"%([^%]+)%")
# App settings that override host.json keys: the Functions host reads host.json into the
# configuration section "AzureFunctionsJobHost", which environment variables (app settings)
# override; .NET configuration keys ignore case, and "__" in a variable's name means ":".
OVERRIDE_PREFIX = "azurefunctionsjobhost"
_KEY_SEPARATOR = re.compile(r"__|:")


class ProjectError(InvalidInputError):
    """The folder is not a usable Azure Functions project."""


def is_functions_project(path: str | Path) -> bool:
    """A folder with a ``host.json``."""
    folder = Path(path)
    return folder.is_dir() and (folder / HOST_JSON).is_file()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ProjectError(f"Cannot read {path}: {exc}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ProjectError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{path} must hold a JSON object.")
    return data


def _section(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        match = next((v for k, v in data.items() if k.lower() == key.lower()), None)
        data = match if isinstance(match, dict) else {}
    return data


def _get(data: dict[str, Any], key: str) -> Any:
    return next((v for k, v in data.items() if k.lower() == key.lower()), None)


def host_overrides(environ: Mapping[str, str]) -> list[tuple[list[str], str]]:
    """The ``AzureFunctionsJobHost__a__b`` settings in ``environ``, as (key path, value),
    shallower paths first (so a deeper key is applied after, and wins over, its parent)."""
    found: list[tuple[list[str], str]] = []
    for name, value in environ.items():
        parts = _KEY_SEPARATOR.split(name)
        if len(parts) < 2 or parts[0].lower() != OVERRIDE_PREFIX or not all(parts[1:]):
            continue
        found.append((parts[1:], value))
    found.sort(key=lambda item: (len(item[0]), [p.lower() for p in item[0]]))
    return found


def _child_key(node: dict[str, Any], key: str) -> str:
    """The spelling ``node`` already uses for ``key`` (keys ignore case), else ``key``."""
    return next((k for k in node if k.lower() == key.lower()), key)


def _set_path(root: dict[str, Any], path: list[str], value: str) -> None:
    node: Any = root
    for position, key in enumerate(path):
        last = position == len(path) - 1
        if isinstance(node, list):
            # host.json arrays are indexed by position ("functions__0"), as in .NET.
            if not key.isdigit():
                return
            index = int(key)
            node.extend([None] * (index + 1 - len(node)))
            if last:
                node[index] = value
                return
            if not isinstance(node[index], dict | list):
                node[index] = {}
            node = node[index]
            continue
        spelled = _child_key(node, key)
        if last:
            # In .NET configuration a value set on a section does not remove its children.
            if not isinstance(node.get(spelled), dict | list):
                node[spelled] = value
            return
        child = node.get(spelled)
        if not isinstance(child, dict | list):
            child = node[spelled] = {}
        node = child


def host_config(host_json: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """host.json as the Functions host sees it: its keys, overridden by the
    ``AzureFunctionsJobHost__<path>`` settings in ``environ`` (values are strings, as app
    settings are). Read it with case-insensitive lookups (:func:`_section`, :func:`_get`)."""
    merged: dict[str, Any] = json.loads(json.dumps(host_json))  # a deep copy
    for path, value in host_overrides(environ):
        _set_path(merged, path, value)
    return merged


def read_host_config(root: Path, settings: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The merged host.json of the project at ``root``: the environment wins over
    ``settings`` (local.settings.json's Values), as when the Values are applied."""
    host = _read_json(root / HOST_JSON)
    return host_config(host, {**(settings or {}), **os.environ})


def durable_task_setting(config: dict[str, Any], key: str) -> Any:
    """``extensions.durableTask.<key>`` of a merged host config."""
    return _get(_section(config, "extensions", "durableTask"), key)


@dataclass(frozen=True, slots=True)
class HostSettings:
    """``local.settings.json``'s ``Host`` section, which Core Tools reads for ``func start``
    (the defaults of its ``--port``, ``--address``, ``--cors`` and ``--cors-credentials``)."""

    local_http_port: int | None = None
    local_http_address: str | None = None
    cors: str | None = None  # comma-separated origins, or "*"
    cors_credentials: bool = False


def _host_settings(data: Any, path: Path) -> HostSettings:
    if data is None:
        return HostSettings()
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: 'Host' must be a JSON object.")
    port = _get(data, "LocalHttpPort")
    if isinstance(port, str) and port.strip().isdigit():
        port = int(port)
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 <= port <= 65535):
        raise ProjectError(f"{path}: Host.LocalHttpPort must be a port number, not {port!r}.")
    address = _get(data, "LocalHttpAddress")
    if address is not None and not isinstance(address, str):
        raise ProjectError(f"{path}: Host.LocalHttpAddress must be a string.")
    cors = _get(data, "CORS")
    if cors is not None and not isinstance(cors, str):
        raise ProjectError(f"{path}: Host.CORS must be a string of comma-separated origins.")
    credentials = _get(data, "CORSCredentials")
    if isinstance(credentials, str) and credentials.strip().lower() in ("true", "false"):
        credentials = credentials.strip().lower() == "true"
    if credentials is not None and not isinstance(credentials, bool):
        raise ProjectError(f"{path}: Host.CORSCredentials must be true or false.")
    return HostSettings(
        # 0 means "not set" to Core Tools (its default port then applies).
        local_http_port=port or None,
        local_http_address=(address or "").strip() or None,
        cors=(cors or "").strip() or None,
        cors_credentials=bool(credentials),
    )


@dataclass(slots=True)
class FunctionsProject:
    """What durable needs to know about a project before and after importing it."""

    root: Path
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    hub_name: str | None = None  # host.json's extensions.durableTask.hubName, if it names one
    default_version: str | None = None
    # extensions.durableTask.extendedSessionsEnabled (durable.azure.session): unset keeps
    # cached executions alive unless they read is_replaying; True always (Azure's extended
    # sessions); False never, every episode a full replay (Azure's default)
    extended_sessions: bool | None = None
    settings: dict[str, str] = field(default_factory=dict)
    host: HostSettings = field(default_factory=HostSettings)  # local.settings.json's Host

    @property
    def task_hub(self) -> str:
        """The hub name the client binding reports (Core Tools' default when none is set)."""
        return self.hub_name or DEFAULT_HUB

    @property
    def script(self) -> Path:
        return self.root / os.environ.get("PYTHON_SCRIPTFILE", DEFAULT_SCRIPT)

    @property
    def is_v2(self) -> bool:
        return self.script.is_file()

    def v1_folders(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir()
                      if p.is_dir() and (p / "function.json").is_file())

    def apply_settings(self) -> None:
        """Put ``local.settings.json`` Values into the environment (set variables win)."""
        for name, value in self.settings.items():
            os.environ.setdefault(name, value)


WEBSITE_HOSTNAME = "WEBSITE_HOSTNAME"


def offer_website_hostname(project: FunctionsProject, host: str, port: int) -> None:
    """Set ``WEBSITE_HOSTNAME`` to where ``durable run`` listens (``localhost:7071``), as Core
    Tools sets it for ``func start`` and Azure to the app's own host name: code that builds
    URLs to its own functions from it (``call_http`` to itself, a callback URL) reaches this
    process. A value in the environment or local.settings.json wins; with port 0 (a free
    port, known only once listening) nothing is set. Called before the app is imported."""
    if port == 0 or WEBSITE_HOSTNAME in os.environ or WEBSITE_HOSTNAME in project.settings:
        return
    name = "localhost" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
    os.environ[WEBSITE_HOSTNAME] = f"{name}:{port}"


def read_project(path: str | Path) -> FunctionsProject:
    root = Path(path).resolve()
    if not is_functions_project(root):
        raise ProjectError(f"{path} is not an Azure Functions project (no {HOST_JSON}).")
    project = FunctionsProject(root)
    local = root / LOCAL_SETTINGS
    if local.is_file():
        data = _read_json(local)
        values = _get(data, "Values")
        if isinstance(values, dict):
            project.settings = {str(k): "" if v is None else str(v) for k, v in values.items()}
        project.host = _host_settings(_get(data, "Host"), local)
    host = read_host_config(root, project.settings)
    prefix = _get(_section(host, "extensions", "http"), "routePrefix")
    if isinstance(prefix, str):
        project.route_prefix = prefix.strip("/")
    hub = durable_task_setting(host, "hubName")
    if isinstance(hub, str) and hub.strip():
        project.hub_name = resolve_settings(hub.strip(), project.settings)
    version = durable_task_setting(host, "defaultVersion")
    if isinstance(version, str) and version:
        project.default_version = version
    sessions = durable_task_setting(host, "extendedSessionsEnabled")
    if isinstance(sessions, str):  # an app setting override is text
        sessions = {"true": True, "false": False}.get(sessions.strip().lower(), sessions)
    if sessions is not None and not isinstance(sessions, bool):
        raise ProjectError(
            f"host.json: extensions.durableTask.extendedSessionsEnabled must be true or false, "
            f"not {sessions!r}.")
    project.extended_sessions = sessions
    return project


def resolve_settings(text: str, settings: dict[str, str] | None = None) -> str:
    """Replace ``%Name%`` app-setting references (as in function.json) from the environment
    (then ``settings``)."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name, (settings or {}).get(name))
        if value is None:
            raise ProjectError(f"The app setting '{name}' (referenced as %{name}%) is not set.")
        return value

    return _SETTING_REF.sub(lookup, text)


def storage_hub(url: str, hub_name: str) -> str:
    """A PostgreSQL URL that names no hub gets the project's (lower-cased, as a schema)."""
    if not url.startswith(("postgres://", "postgresql://")) or re.search(r"[?&]hub=", url):
        return url
    hub = re.sub(r"[^a-z0-9_]", "_", hub_name.lower())[:48].strip("_")
    if not hub or not hub[0].isalpha():
        return url
    return f"{url}{'&' if '?' in url else '?'}hub={hub}"


__all__ = [
    "FunctionsProject",
    "HostSettings",
    "ProjectError",
    "durable_task_setting",
    "host_config",
    "host_overrides",
    "is_functions_project",
    "read_host_config",
    "read_project",
    "resolve_settings",
    "storage_hub",
]
