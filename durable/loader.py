"""Find the ``DFApp`` a command line names: ``module:attribute``, ``module`` or ``path/app.py``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from durable.app import DFApp
from durable.errors import InvalidInputError


def load_app(spec: str) -> tuple[DFApp, Path]:
    """Return the app and the directory it lives in (where its default SQLite file goes)."""
    target, _, attribute = spec.partition(":")
    if target.endswith(".py") or Path(target).is_file():
        path = Path(target).resolve()
        if not path.is_file():
            raise InvalidInputError(f"No such file: {target}")
        sys.path.insert(0, str(path.parent))
        module_name = f"_durable_app_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise InvalidInputError(f"Cannot import {target}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
        folder = path.parent
    else:
        sys.path.insert(0, str(Path.cwd()))
        module = importlib.import_module(target)
        folder = Path(module.__file__ or ".").resolve().parent
    if attribute:
        app = getattr(module, attribute, None)
        if not isinstance(app, DFApp):
            raise InvalidInputError(f"{spec} is not a durable.DFApp")
        return app, folder
    apps = [value for value in vars(module).values() if isinstance(value, DFApp)]
    if len(apps) != 1:
        raise InvalidInputError(
            f"{target} defines {len(apps)} DFApp objects; name one as {target}:<attribute>"
        )
    return apps[0], folder
