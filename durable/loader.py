"""Find the app a command line names: ``module:attribute``, ``module``, ``path/app.py``, or a
folder: an Azure Functions project (a ``host.json`` with ``function_app.py`` or function
folders; see docs/azure-apps.md), or one holding an ``app.py`` / ``function_app.py`` that
defines a ``DFApp`` (a ``host.json`` beside a native ``app.py`` only lends its
``defaultVersion``).

Errors say what to do: a missing file or module, a folder that is neither, an app file that
defines no app. An app that fails to import raises :class:`AppImportError` carrying the
user's own traceback (durable's and importlib's frames cut off).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from durable.app import DFApp
from durable.errors import InvalidInputError

log = logging.getLogger("durable.loader")

_DURABLE_DIR = str(Path(__file__).resolve().parent)
_APP_FILES = ("app.py", "function_app.py")


class AppImportError(InvalidInputError):
    """The app's module raised while it was imported."""


def _user_traceback(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename.startswith(_DURABLE_DIR)
        or "importlib" in tb.tb_frame.f_code.co_filename
        or tb.tb_frame.f_code.co_filename.startswith("<frozen")
    ):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def _import_file(path: Path) -> Any:
    sys.path.insert(0, str(path.parent))
    module_name = f"_durable_app_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise InvalidInputError(f"Cannot import {path}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except (KeyboardInterrupt, InvalidInputError):
        raise
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        raise AppImportError(f"Importing {path} failed:\n\n{_user_traceback(exc)}") from None
    return module


def _import_module(name: str) -> Any:
    sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name or (exc.name and name.startswith(exc.name + ".")):
            raise InvalidInputError(
                f"No module named '{name}' (from {Path.cwd()}); name a module, a .py file or "
                "a folder."
            ) from None
        raise AppImportError(f"Importing {name} failed:\n\n{_user_traceback(exc)}") from None
    except (KeyboardInterrupt, InvalidInputError):
        raise
    except BaseException as exc:
        raise AppImportError(f"Importing {name} failed:\n\n{_user_traceback(exc)}") from None


def _native_host_json(app: DFApp, folder: Path) -> None:
    """A host.json beside a native app: honour defaultVersion for starts, as Azure does
    (``AzureFunctionsJobHost__extensions__durableTask__defaultVersion`` overrides it)."""
    from durable.azure.project import ProjectError, durable_task_setting, read_host_config

    if not (folder / "host.json").is_file() or app.default_version is not None:
        return
    try:  # host.json with its AzureFunctionsJobHost__ overrides from the environment
        config = read_host_config(folder)
    except ProjectError:
        return
    version = durable_task_setting(config, "defaultVersion")
    if isinstance(version, str) and version:
        app.default_version = version
        for info in app.orchestrators.values():
            if info.runtime_factory is None:
                info.runtime_factory = _versioned_children(version)
        log.info("host.json: orchestrations started without a version get %r", version)


def _versioned_children(version: str) -> Any:
    """A runtime factory giving sub-orchestrations started without a version ``version``, as
    the Durable extension applies ``defaultVersion`` to them too."""
    from durable.orchestration.actions import StartSubOrchestration
    from durable.orchestration.runtime import OrchestrationRuntime

    class VersionedChildren(OrchestrationRuntime):
        def run_episode(self, new_events: Any, now: float) -> Any:
            decision = super().run_episode(new_events, now)
            for action in decision.actions:
                if isinstance(action, StartSubOrchestration) and action.version is None:
                    action.version = version
            return decision

    return VersionedChildren


def _native_app_file(folder: Path, found: Path | None) -> bool:
    """A folder with a host.json holds a *native* app if its app file imports durable and no
    Azure layout is there (no function folders; an app.py, not the SDK's function_app.py)."""
    if found is None or found.name != "app.py":
        return False
    if any((child / "function.json").is_file() for child in folder.iterdir() if child.is_dir()):
        return False
    try:
        return "durable" in found.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _find_app(module: Any, target: str, attribute: str, spec: str) -> DFApp:
    if attribute:
        app = getattr(module, attribute, None)
        if not isinstance(app, DFApp):
            raise InvalidInputError(f"{spec} is not a durable.DFApp")
        return app
    apps = [value for value in vars(module).values() if isinstance(value, DFApp)]
    if len(apps) != 1:
        hint = ""
        if not apps and any(type(v).__module__.startswith("azure.") for v in vars(module).values()):
            hint = (" It uses the Azure SDK: run its project folder (the one with host.json), "
                    "or import durable in place of azure.durable_functions.")
        raise InvalidInputError(
            f"{target} defines {len(apps)} DFApp objects; name one as {target}:<attribute>."
            + hint
        )
    return apps[0]


def functions_project_path(spec: str) -> Path | None:
    """The folder :func:`load_app` loads ``spec`` from as an Azure Functions project (a
    folder with a host.json and no native app file), else None."""
    path = Path(spec.partition(":")[0])
    if not path.is_dir():
        return None
    from durable.azure.project import is_functions_project

    found = next((path / name for name in _APP_FILES if (path / name).is_file()), None)
    return path if is_functions_project(path) and not _native_app_file(path, found) else None


def load_app(spec: str) -> tuple[DFApp, Path]:
    """Return the app and the directory it lives in (where its default SQLite file goes)."""
    target, _, attribute = spec.partition(":")
    path = Path(target)
    if path.is_dir():
        project = functions_project_path(spec)
        if project is not None:
            from durable.azure import load_project

            return load_project(project), project.resolve()
        found = next((path / name for name in _APP_FILES if (path / name).is_file()), None)
        if found is None:
            raise InvalidInputError(
                f"{target} is a folder with no host.json (an Azure Functions project) and no "
                f"{' or '.join(_APP_FILES)}; name the app file."
            )
        path = found
    if target.endswith(".py") or path.is_file():
        path = path.resolve()
        if not path.is_file():
            raise InvalidInputError(f"No such file: {target}")
        module = _import_file(path)
        folder = path.parent
    else:
        module = _import_module(target)
        folder = Path(module.__file__ or ".").resolve().parent
    app = _find_app(module, target, attribute, spec)
    _native_host_json(app, folder)
    return app, folder


def storage_for(app: DFApp, folder: Path, storage: str | None) -> str:
    """The storage URL to use: ``storage``, else ``$DURABLE_STORAGE``, else ``durable.db`` in
    ``folder``. A Functions project whose host.json names a hub gets it as the PostgreSQL
    schema when the URL names none."""
    from durable.storage import default_url

    url = storage or default_url(folder)
    project = getattr(app, "project", None)
    hub = getattr(project, "hub_name", None)
    if hub:
        from durable.azure.project import storage_hub

        url = storage_hub(url, hub)
    return url
