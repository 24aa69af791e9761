"""An Azure Functions project folder: ``host.json``, ``local.settings.json``, its layout.

What is read, as the Functions host and Core Tools read it:

- ``host.json``: ``extensions.http.routePrefix`` (default ``api``), ``extensions.durableTask``
  ``hubName`` and ``defaultVersion``. Other settings are accepted and ignored (logging,
  extension bundles, ...).
- ``local.settings.json``: ``Values`` become environment variables before any user code is
  imported (a variable already set in the environment wins, so a deployment can override a
  local value).
- Layout: ``function_app.py`` (or ``$PYTHON_SCRIPTFILE``) is the v2 decorator model; otherwise
  every direct subfolder with a ``function.json`` is a v1 function.
"""

from __future__ import annotations

import json
import os
import re
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


@dataclass(slots=True)
class FunctionsProject:
    """What durable needs to know about a project before and after importing it."""

    root: Path
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    hub_name: str | None = None  # host.json's extensions.durableTask.hubName, if it names one
    default_version: str | None = None
    settings: dict[str, str] = field(default_factory=dict)

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


def read_project(path: str | Path) -> FunctionsProject:
    root = Path(path).resolve()
    if not is_functions_project(root):
        raise ProjectError(f"{path} is not an Azure Functions project (no {HOST_JSON}).")
    host = _read_json(root / HOST_JSON)
    project = FunctionsProject(root)
    prefix = _get(_section(host, "extensions", "http"), "routePrefix")
    if isinstance(prefix, str):
        project.route_prefix = prefix.strip("/")
    local = root / LOCAL_SETTINGS
    if local.is_file():
        data = _read_json(local)
        values = _get(data, "Values")
        if isinstance(values, dict):
            project.settings = {str(k): "" if v is None else str(v) for k, v in values.items()}
    durable_task = _section(host, "extensions", "durableTask")
    hub = _get(durable_task, "hubName")
    if isinstance(hub, str) and hub.strip():
        project.hub_name = resolve_settings(hub.strip(), project.settings)
    version = _get(durable_task, "defaultVersion")
    if isinstance(version, str) and version:
        project.default_version = version
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
    "ProjectError",
    "is_functions_project",
    "read_project",
    "resolve_settings",
    "storage_hub",
]
