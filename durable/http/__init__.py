"""The HTTP adapter: user routes, the Durable Functions management API, keys, ``durable run``.

Modules, each small and with one job:

- :mod:`~durable.http.routes`: route templates and calling user functions.
- :mod:`~durable.http.management`: the ``/runtime/webhooks/durabletask`` handlers.
- :mod:`~durable.http.keys`: access keys; :mod:`~durable.http.errors`: error -> status.
- :mod:`~durable.http.openapi`: the management API's OpenAPI document.
- :mod:`~durable.http.app`: the ASGI app; :mod:`~durable.http.server`: uvicorn + Host.

Below this adapter, in the core: the value types ``HttpRequest``/``HttpResponse``
(:mod:`durable.http_model`, exported as ``durable.*``), the management URLs and check-status
responses the client builds (:mod:`durable.management_urls`), and the built-in activity behind
``context.call_http`` (:mod:`durable.worker.http_activity`).

Only the value types are imported eagerly, so ``import durable`` stays light for workers.
"""

from __future__ import annotations

from typing import Any

from durable.http_model import HttpRequest, HttpResponse

__all__ = ["HttpRequest", "HttpResponse", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from durable.http.app import create_app

        return create_app
    raise AttributeError(f"module 'durable.http' has no attribute {name!r}")
