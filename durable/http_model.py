"""``HttpRequest`` and ``HttpResponse``: what user HTTP routes receive and return.

They mirror ``azure.functions.HttpRequest``/``HttpResponse`` (same constructor arguments and
accessors), so an Azure Functions HTTP starter ports by changing its imports. Both are plain
values with no server attached: a route handler can be unit-tested by building an
``HttpRequest`` by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from durable import serialization
from durable.errors import InvalidInputError


class InvalidRequestBodyError(InvalidInputError):
    """The request body is not valid JSON.

    A ``ValueError`` (as Azure's ``get_json`` raises), and an ``InvalidInputError``, so when a
    handler lets it escape the server answers 400 instead of 500.
    """


class HttpHeaders(Mapping[str, str]):
    """A read-only, case-insensitive header mapping (``req.headers["content-type"]``)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        # Keep the first spelling of each name for iteration; look up by lower case.
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in (items or {}).items():
            self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"HttpHeaders({dict(self)!r})"


class HttpRequest:
    """An incoming HTTP request, as ``azure.functions.HttpRequest`` presents it.

    ``params`` holds the query string (the last value of a repeated name), ``route_params``
    the values the route template captured (always strings, as in Azure Functions).
    """

    __slots__ = ("_body", "_headers", "_method", "_params", "_route_params", "_url")

    def __init__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        route_params: Mapping[str, str] | None = None,
        body: bytes | str = b"",
    ) -> None:
        self._method = method.upper()
        self._url = url
        self._headers = HttpHeaders(headers)
        self._params = dict(params or {})
        self._route_params = dict(route_params or {})
        self._body = body.encode("utf-8") if isinstance(body, str) else bytes(body)

    @property
    def method(self) -> str:
        return self._method

    @property
    def url(self) -> str:
        return self._url

    @property
    def headers(self) -> HttpHeaders:
        return self._headers

    @property
    def params(self) -> dict[str, str]:
        return self._params

    @property
    def route_params(self) -> dict[str, str]:
        return self._route_params

    def get_body(self) -> bytes:
        return self._body

    def get_json(self) -> Any:
        """The body decoded as JSON; raises :class:`InvalidRequestBodyError` (a ValueError)."""
        try:
            return json.loads(self._body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidRequestBodyError(f"The request body is not valid JSON: {exc}") from None

    def __repr__(self) -> str:
        return f"HttpRequest({self._method} {self._url})"


class HttpResponse:
    """An HTTP response, as ``azure.functions.HttpResponse`` builds it.

    Defaults as in Azure: status 200, ``text/plain``, UTF-8. ``headers`` may be changed after
    construction; a ``Content-Type`` header there wins over ``mimetype``.
    """

    __slots__ = ("_body", "_charset", "_mimetype", "_status_code", "headers")

    def __init__(
        self,
        body: str | bytes | bytearray | None = None,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        mimetype: str | None = None,
        charset: str | None = None,
    ) -> None:
        status = 200 if status_code is None else status_code
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise InvalidInputError(f"status_code must be an int in 100..599, not {status!r}.")
        self._status_code = status
        self._mimetype = mimetype or "text/plain"
        self._charset = charset or "utf-8"
        self.headers: dict[str, str] = dict(headers or {})
        if body is None:
            self._body = b""
        elif isinstance(body, str):
            self._body = body.encode(self._charset)
        elif isinstance(body, bytes | bytearray):
            self._body = bytes(body)
        else:
            raise TypeError(
                f"HttpResponse body must be str, bytes or None, not {type(body).__name__}"
            )

    @property
    def status_code(self) -> int:
        return self._status_code

    @property
    def mimetype(self) -> str:
        return self._mimetype

    @property
    def charset(self) -> str:
        return self._charset

    def get_body(self) -> bytes:
        return self._body

    def __repr__(self) -> str:
        return f"HttpResponse({self._status_code}, {self._mimetype}, {len(self._body)} bytes)"


def json_response(
    value: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """An ``application/json`` response holding ``value``."""
    body = serialization.dumps(value, "response body")
    return HttpResponse(body, status_code=status_code, headers=headers, mimetype="application/json")


__all__ = ["HttpHeaders", "HttpRequest", "HttpResponse", "InvalidRequestBodyError"]
