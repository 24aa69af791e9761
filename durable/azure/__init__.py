"""Run unmodified Azure Functions Durable apps: ``durable run PATH`` on a Functions project.

An adapter over the core (which never imports it): it loads a project in either layout
(:mod:`.project`, :mod:`.functions`), calls its functions the way the Python worker does
(:mod:`.bindings`), and drives its orchestrators through the real ``azure-functions-durable``
SDK's out-of-process protocol (:mod:`.protocol`, :mod:`.runtime`). Needs the ``azure`` extra
(``pip install 'durable-py[azure]'``). See docs/azure-apps.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable.azure.project import is_functions_project

if TYPE_CHECKING:
    from durable.azure.app import AzureFunctionsApp


def load_project(path: Any) -> AzureFunctionsApp:
    """Import and index the Functions project at ``path``; see :mod:`durable.azure.app`."""
    from durable.azure.project import read_project

    read_project(path)  # a broken host.json is reported as such, before the SDK reads it
    try:
        import azure.durable_functions
        import azure.functions  # noqa: F401
    except ImportError as exc:
        from durable.errors import InvalidInputError

        raise InvalidInputError(
            f"{path} is an Azure Functions project; running it needs the Azure SDK packages: "
            f"pip install 'durable-py[azure]' ({exc})"
        ) from None
    from durable.azure.app import load_project as load

    return load(path)


__all__ = ["is_functions_project", "load_project"]
