"""CORS for ``durable run``, as Azure Functions Core Tools applies it (``func start --cors``, or
``Host.CORS`` / ``Host.CORSCredentials`` in ``local.settings.json``).

Core Tools puts ASP.NET Core's CORS middleware in front of everything the host serves (function
routes, the admin API, the Durable extension's webhooks), with the listed origins, any header
and any method. durable puts :class:`CorsMiddleware` in front of the same three; not in front
of its own operator apps (``/dashboard``, ``/metrics``), so that the dashboard's guard against
cross-site actions, a preflight nobody answers, holds whatever the CORS settings. So, for a
request to a route or an API that carries an ``Origin`` header:

- **A preflight** (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here,
  ``204`` with no body, whatever the path, and never reaches a route or the key check
  (browsers send no keys on preflights). If the origin is allowed the answer carries
  ``Access-Control-Allow-Origin``, ``Access-Control-Allow-Methods`` (the method asked for),
  ``Access-Control-Allow-Headers`` (the headers asked for, if any) and, with credentials,
  ``Access-Control-Allow-Credentials: true``; if not, none of them, and the browser refuses.
- **Any other request** is served as usual, and its response gets
  ``Access-Control-Allow-Origin`` (and ``Access-Control-Allow-Credentials``) when the origin is
  allowed. An ``OPTIONS`` that is not a preflight goes to the routes like any method.

``*`` allows any origin and is answered ``Access-Control-Allow-Origin: *``; a listed origin is
echoed, with ``Vary: Origin`` so caches keep answers per origin. Origins compare ignoring case
(ASP.NET Core lower-cases the configured ones; browsers send them lower-case). The CORS protocol
forbids credentials with a wildcard origin: ASP.NET Core refuses to build that policy, so Core
Tools does not start; neither does durable (:class:`CorsPolicy` raises, saying why).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from durable.errors import InvalidInputError

_ALLOW_ORIGIN = b"access-control-allow-origin"
_ALLOW_CREDENTIALS = b"access-control-allow-credentials"
_OURS = (_ALLOW_ORIGIN, _ALLOW_CREDENTIALS)


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which origins may call the server from a browser, and whether with credentials."""

    origins: frozenset[str]
    any_origin: bool = False
    credentials: bool = False

    @classmethod
    def parse(cls, origins: str, credentials: bool = False) -> CorsPolicy | None:
        """``"https://a.example,https://b.example"`` or ``"*"`` (Core Tools' syntax); ``None``
        when no origin is given (no CORS at all, as Core Tools without ``--cors``)."""
        listed = [origin.strip() for origin in origins.split(",") if origin.strip()]
        if not listed:
            return None
        any_origin = "*" in listed
        if any_origin and credentials:
            raise InvalidInputError(
                "CORS: credentials cannot be allowed for any origin ('*'); the CORS protocol "
                "forbids it (and Core Tools does not start with it). List the origins that may "
                "send credentials, e.g. CORS=http://localhost:3000."
            )
        return cls(frozenset(o.lower() for o in listed if o != "*"), any_origin, credentials)

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin.lower() in self.origins

    def headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        """The headers every answer to a request from ``origin`` gets (none if refused)."""
        if not self.allows(origin):
            return [] if self.any_origin else [(b"vary", b"Origin")]
        if self.any_origin:
            found = [(_ALLOW_ORIGIN, b"*")]
        else:
            found = [(_ALLOW_ORIGIN, origin.encode("latin-1")), (b"vary", b"Origin")]
        if self.credentials:
            found.append((_ALLOW_CREDENTIALS, b"true"))
        return found


def _header(scope: Scope, name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", []) if key == name]
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


class CorsMiddleware:
    """The ASGI middleware applying a :class:`CorsPolicy` to every HTTP request."""

    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin") if scope["type"] == "http" else None
        if origin is None:
            await self.app(scope, receive, send)
            return
        extra = self.policy.headers(origin)
        if scope["method"] == "OPTIONS":
            method = _header(scope, b"access-control-request-method")
            if method is not None:
                await self._preflight(scope, send, extra, method)
                return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _OURS]
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, send: Send, extra: list[tuple[bytes, bytes]],
                         method: str) -> None:
        headers = list(extra)
        if self.policy.allows(_header(scope, b"origin") or ""):
            headers.append((b"access-control-allow-methods", method.strip().encode("latin-1")))
            asked = _header(scope, b"access-control-request-headers")
            names = [name.strip() for name in (asked or "").split(",") if name.strip()]
            if names:
                headers.append((b"access-control-allow-headers",
                                ",".join(names).encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


__all__ = ["CorsMiddleware", "CorsPolicy"]
