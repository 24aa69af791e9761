"""Find a project's functions, in either layout, as the Python worker indexes them.

- **v2** (``function_app.py``): the module is imported as ``function_app`` with the project on
  ``sys.path``; its one ``FunctionRegister`` (``func.FunctionApp`` or ``df.DFApp``) lists the
  functions through the SDK's own ``get_functions()``, each with the ``function.json`` it would
  generate and the callable the worker would call.
- **v1** (one folder per function): each ``function.json`` names its ``scriptFile`` (default
  ``__init__.py``) and ``entryPoint`` (default ``main``). The script is imported as
  ``__app__.<Folder>`` (``__app__.<Folder>.<script>`` for another file), the package the Python
  worker uses, so relative imports such as ``from ..shared_code import x`` work; the project root
  is on ``sys.path`` too. A function with ``"disabled": true`` is skipped.

An import that fails raises :class:`AppLoadError` whose message is the user's traceback, with
durable's and importlib's own frames cut off.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durable.azure.project import FunctionsProject, ProjectError, resolve_settings
from durable.errors import InvalidInputError

APP_PACKAGE = "__app__"
_DURABLE_DIR = str(Path(__file__).resolve().parent.parent)


class AppLoadError(InvalidInputError):
    """The project's code could not be imported or indexed."""


@dataclass(slots=True)
class Binding:
    """One entry of a function's ``bindings``, names normalised for lookup."""

    type: str
    direction: str
    name: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.type.lower()

    def get(self, key: str, default: Any = None) -> Any:
        """A binding property, looked up case-insensitively, ``%Setting%`` resolved."""
        for name, value in self.data.items():
            if name.lower() == key.lower():
                return resolve_settings(value) if isinstance(value, str) else value
        return default


@dataclass(slots=True)
class FunctionSpec:
    """One function: its name, bindings and the callable the Functions worker would invoke."""

    name: str
    bindings: list[Binding]
    fn: Callable[..., Any]
    directory: Path
    script: Path

    def binding_of(self, *kinds: str) -> Binding | None:
        return next((b for b in self.bindings if b.kind in kinds), None)

    @property
    def trigger(self) -> Binding | None:
        return next((b for b in self.bindings if b.kind.endswith("trigger")), None)


def _internal(filename: str) -> bool:
    return filename.startswith(_DURABLE_DIR) or "importlib" in filename or filename.startswith(
        "<frozen"
    )


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` from the first frame outside durable and importlib."""
    tb = exc.__traceback__
    while tb is not None and _internal(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


@contextmanager
def _importing(what: str) -> Iterator[None]:
    try:
        yield
    except (AppLoadError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit at import time is the user's error too
        raise AppLoadError(f"{what} failed:\n\n{user_traceback(exc)}") from None


def _parse_bindings(raw: Any, where: str) -> list[Binding]:
    if not isinstance(raw, list):
        raise ProjectError(f"{where}: 'bindings' must be a list.")
    found: list[Binding] = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ProjectError(f"{where}: every binding needs a 'type'.")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ProjectError(f"{where}: the {entry['type']} binding has no 'name'.")
        direction = str(entry.get("direction") or "in").lower()
        found.append(Binding(entry["type"], direction, name, dict(entry)))
    return found


# -- v2 ----------------------------------------------------------------------------------------


class _QuietIndexing(logging.Filter):
    """Hide the SDK's "Auth level is not applied to non http function app" indexing notice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Auth level is not applied" not in record.getMessage()


def _load_module(name: str, path: Path, package_path: list[str] | None = None) -> Any:
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=package_path
    )
    if spec is None or spec.loader is None:
        raise AppLoadError(f"Cannot import {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_v2(project: FunctionsProject) -> list[FunctionSpec]:
    from azure.functions import FunctionRegister

    script = project.script
    with _importing(f"Importing {script.name}"):
        module = _load_module(script.stem, script)
    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    if not apps:
        raise AppLoadError(
            f"{script.name} defines no function app: create one with func.FunctionApp() or "
            "df.DFApp()."
        )
    if len(apps) > 1:
        raise AppLoadError(f"{script.name} defines {len(apps)} function apps; keep one.")
    root = logging.getLogger()
    quiet = _QuietIndexing()
    root.addFilter(quiet)
    try:
        with _importing(f"Indexing the functions of {script.name}"):
            functions = apps[0].get_functions()
    finally:
        root.removeFilter(quiet)
    specs: list[FunctionSpec] = []
    for function in functions:
        name = function.get_function_name() or function.get_user_function().__name__
        description = json.loads(function.get_function_json())
        bindings = _parse_bindings(description.get("bindings"), f"function '{name}'")
        specs.append(FunctionSpec(name, bindings, function.get_user_function(), project.root,
                                  script))
    return specs


# -- v1 ----------------------------------------------------------------------------------------


def _app_package(root: Path) -> None:
    existing = sys.modules.get(APP_PACKAGE)
    if existing is not None and list(getattr(existing, "__path__", [])) == [str(root)]:
        return
    package = types.ModuleType(APP_PACKAGE)
    package.__path__ = [str(root)]  # type: ignore[attr-defined]
    package.__package__ = APP_PACKAGE
    sys.modules[APP_PACKAGE] = package


def _import_script(folder: Path, script: Path) -> Any:
    package_name = f"{APP_PACKAGE}.{folder.name}"
    init = folder / "__init__.py"
    if script == init:
        existing = sys.modules.get(package_name)
        if existing is not None and getattr(existing, "__file__", None) == str(init):
            return existing
        return _load_module(package_name, init, [str(folder)])
    if package_name not in sys.modules:
        if init.is_file():
            _load_module(package_name, init, [str(folder)])
        else:
            package = types.ModuleType(package_name)
            package.__path__ = [str(folder)]  # type: ignore[attr-defined]
            sys.modules[package_name] = package
    name = f"{package_name}.{script.stem}"
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(script):
        return existing
    return _load_module(name, script)


def _disabled(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        setting = os.environ.get(value, value)
        return setting.strip().lower() in ("true", "1")
    return False


def load_v1(project: FunctionsProject) -> list[FunctionSpec]:
    _app_package(project.root)
    specs: list[FunctionSpec] = []
    for folder in project.v1_folders():
        config_path = folder / "function.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            raise ProjectError(f"{config_path} is not valid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise ProjectError(f"{config_path} must hold a JSON object.")
        if _disabled(config.get("disabled")):
            continue
        name = folder.name
        bindings = _parse_bindings(config.get("bindings"), f"{name}/function.json")
        script = (folder / str(config.get("scriptFile") or "__init__.py")).resolve()
        if not script.is_file():
            raise ProjectError(f"{name}/function.json: scriptFile {script} does not exist.")
        entry = str(config.get("entryPoint") or "main")
        with _importing(f"Importing function '{name}' ({script.relative_to(project.root)})"):
            module = _import_script(folder.resolve(), script)
        fn = getattr(module, entry, None)
        if not callable(fn):
            raise AppLoadError(
                f"Function '{name}': {script.name} has no callable '{entry}' (the entryPoint)."
            )
        specs.append(FunctionSpec(name, bindings, fn, folder, script))
    if not specs:
        raise ProjectError(
            f"{project.root} has no functions: no function_app.py and no folder with a "
            "function.json."
        )
    return specs


_loaded_roots: list[str] = []


def _forget_other_projects(root: str) -> None:
    """One process runs one project, as a Functions worker does. If another project was loaded
    here before (tests, benchmarks), drop its modules and its path, so that a module name both
    use (``function_app``, a shared helper) is imported from this project, not found cached."""
    for other in [r for r in _loaded_roots if r != root]:
        prefix = other.rstrip("/") + "/"
        for name, module in list(sys.modules.items()):
            filename = getattr(module, "__file__", None) or ""
            if filename.startswith(prefix):
                del sys.modules[name]
        while other in sys.path:
            sys.path.remove(other)
        _loaded_roots.remove(other)
    if root not in _loaded_roots:
        _loaded_roots.append(root)


def load_functions(project: FunctionsProject) -> list[FunctionSpec]:
    """Import the project's code and list its functions (v2 if function_app.py exists)."""
    root = str(project.root)
    _forget_other_projects(root)
    if root not in sys.path:
        sys.path.insert(0, root)
    if project.is_v2:
        return load_v2(project)
    return load_v1(project)


__all__ = ["AppLoadError", "Binding", "FunctionSpec", "load_functions", "user_traceback"]
