"""User HTTP routes: ``@app.route(route=..., methods=..., auth_level=...)`` served under ``/api``.

Route templates use the Azure Functions (ASP.NET) syntax, so routes port unchanged:

- ``{name}`` captures one path segment; ``{name?}`` may be left out; ``{name=value}`` has a
  default; ``{*rest}`` captures the rest of the path (slashes included).
- constraints follow a colon: ``{id:int}``, ``alpha``, ``bool``, ``guid``, ``long``,
  ``float``/``double``/``decimal``, ``datetime``, ``min(n)``, ``max(n)``, ``range(a,b)``,
  ``minlength(n)``, ``maxlength(n)``, ``length(n)``/``length(a,b)``, ``regex(expr)``.
- literal segments match case-insensitively; a trailing slash is ignored.

When several templates match, the most specific wins (literal before constrained parameter
before parameter before optional before catch-all, segment by segment), as in ASP.NET. A path
that matches but not for the request's method is a 404, as the Functions host answers.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from durable.app import AuthLevel, DFApp, FunctionInfo
from durable.errors import InvalidInputError
from durable.http_model import HttpRequest, HttpResponse, json_response

_TOKEN = re.compile(r"\{([^{}]*)\}")
_PARAM = re.compile(
    r"^(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)"
    r"(?P<constraints>(?::[^:?=]+(?:\([^)]*\))?)*)(?P<optional>\?)?(?:=(?P<default>.*))?$"
)
_CONSTRAINT = re.compile(r":([A-Za-z]+)(?:\(([^)]*)\))?")

# Segment kinds, in ASP.NET precedence order (lower is more specific).
LITERAL, COMPLEX, CONSTRAINED, PARAMETER, OPTIONAL, CATCH_ALL = range(6)

_PATTERNS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?:true|false)",
    "guid": r"\{?[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\}?",
    "float": r"-?(?:\d+\.?\d*|\.\d+)",
    "double": r"-?(?:\d+\.?\d*|\.\d+)",
    "decimal": r"-?(?:\d+\.?\d*|\.\d+)",
}
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

Check = Callable[[str], bool]


def _in_range(low: float, high: float) -> Check:
    def check(value: str) -> bool:
        try:
            return low <= int(value) <= high
        except ValueError:
            return False

    return check


def _length(low: int, high: int) -> Check:
    return lambda value: low <= len(value) <= high


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _ints(args: str, count: int, template: str) -> list[int]:
    try:
        numbers = [int(part) for part in args.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != count:
        raise InvalidInputError(f"Route '{template}': bad constraint arguments ({args!r}).")
    return numbers


def _constraint(name: str, args: str | None, template: str) -> tuple[str | None, Check | None]:
    """A regex fragment and/or a check for one ``:constraint``."""
    kind = name.lower()
    if kind in _PATTERNS and args is None:
        check = None
        if kind == "int":
            check = _in_range(*_INT32)
        elif kind == "long":
            check = _in_range(*_INT64)
        return _PATTERNS[kind], check
    if kind == "datetime" and args is None:
        return None, _is_datetime
    if args is None:
        raise InvalidInputError(f"Route '{template}': unknown route constraint ':{name}'.")
    if kind == "min":
        return r"-?\d+", _in_range(_ints(args, 1, template)[0], float("inf"))
    if kind == "max":
        return r"-?\d+", _in_range(float("-inf"), _ints(args, 1, template)[0])
    if kind == "range":
        low, high = _ints(args, 2, template)
        return r"-?\d+", _in_range(low, high)
    if kind == "minlength":
        return None, _length(_ints(args, 1, template)[0], 2**31)
    if kind == "maxlength":
        return None, _length(0, _ints(args, 1, template)[0])
    if kind == "length":
        numbers = _ints(args, 2 if "," in args else 1, template)
        return None, _length(numbers[0], numbers[-1])
    if kind == "regex":
        try:
            compiled = re.compile(args, re.IGNORECASE)
        except re.error as exc:
            raise InvalidInputError(f"Route '{template}': bad regex constraint: {exc}") from None
        return None, lambda value: compiled.search(value) is not None
    raise InvalidInputError(f"Route '{template}': unknown route constraint ':{name}'.")


@dataclass(slots=True)
class _Param:
    group: str
    name: str
    checks: list[Check] = field(default_factory=list)
    default: str | None = None


@dataclass(slots=True)
class CompiledTemplate:
    template: str
    regex: re.Pattern[str]
    params: list[_Param]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Captured route parameters if ``path`` (below the prefix) matches, else None."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for param in self.params:
            value = found.group(param.group)
            if value is None or value == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values


def compile_template(template: str) -> CompiledTemplate:
    """Compile an Azure Functions route template; raise InvalidInputError if it is malformed."""
    segments = [s for s in template.strip().strip("/").split("/")] if template.strip("/") else []
    parts: list[str] = []
    params: list[_Param] = []
    precedence: list[int] = []
    for index, segment in enumerate(segments):
        if not segment:
            raise InvalidInputError(f"Route '{template}' has an empty segment.")
        tokens = _TOKEN.split(segment)  # literal, param, literal, param, ...
        literal_only = len(tokens) == 1
        if literal_only:
            if "{" in segment or "}" in segment:
                raise InvalidInputError(f"Route '{template}': unbalanced braces in '{segment}'.")
            parts.append("/" + re.escape(segment))
            precedence.append(LITERAL)
            continue
        whole = len(tokens) == 3 and tokens[0] == "" and tokens[2] == ""
        regex = ""
        kind = COMPLEX
        for position, token in enumerate(tokens):
            if position % 2 == 0:
                if "{" in token or "}" in token:
                    raise InvalidInputError(f"Route '{template}': unbalanced braces.")
                regex += re.escape(token)
                continue
            spec = _PARAM.match(token)
            if spec is None:
                raise InvalidInputError(f"Route '{template}': bad parameter '{{{token}}}'.")
            group = f"p{len(params)}"
            param = _Param(group, spec["name"], default=spec["default"])
            fragments: list[str] = []
            for name, args in _CONSTRAINT.findall(spec["constraints"] or ""):
                fragment, check = _constraint(name, args or None, template)
                if fragment:
                    fragments.append(fragment)
                if check:
                    param.checks.append(check)
            if any(p.name.lower() == param.name.lower() for p in params):
                raise InvalidInputError(f"Route '{template}' names '{param.name}' twice.")
            params.append(param)
            optional = bool(spec["optional"]) or spec["default"] is not None
            if spec["star"]:
                if not whole or index != len(segments) - 1:
                    raise InvalidInputError(
                        f"Route '{template}': a catch-all parameter must be the last segment."
                    )
                regex = f"(?P<{group}>.*)"
                kind = CATCH_ALL
                break
            body = fragments[0] if fragments else "[^/]+"
            if whole and optional:
                kind = OPTIONAL
            elif whole:
                kind = CONSTRAINED if param.checks or fragments else PARAMETER
            elif optional:
                raise InvalidInputError(
                    f"Route '{template}': an optional parameter must fill its segment."
                )
            regex += f"(?P<{group}>{body})"
        if kind in (OPTIONAL, CATCH_ALL):
            parts.append(f"(?:/{regex})?")
        else:
            parts.append("/" + regex)
        precedence.append(kind)
    pattern = re.compile("".join(parts) + "/?", re.IGNORECASE)
    return CompiledTemplate(template, pattern, params, tuple(precedence))


@dataclass(slots=True)
class UserRoute:
    info: FunctionInfo
    compiled: CompiledTemplate
    methods: frozenset[str] | None
    auth_level: AuthLevel

    @property
    def template(self) -> str:
        return self.compiled.template


class RouteTable:
    """The app's HTTP functions, compiled once, most specific first."""

    def __init__(self, app: DFApp) -> None:
        routes: list[UserRoute] = []
        for info in app.http_functions:
            template = info.route if info.route is not None else info.name
            routes.append(
                UserRoute(
                    info=info,
                    compiled=compile_template(template),
                    methods=frozenset(info.methods) if info.methods else None,
                    auth_level=info.auth_level or app.http_auth_level,
                )
            )
        self.routes = sorted(routes, key=lambda r: r.compiled.precedence)

    def match(self, method: str, path: str) -> tuple[UserRoute, dict[str, str]] | None:
        for route in self.routes:
            if route.methods is not None and method not in route.methods:
                continue
            values = route.compiled.match(path)
            if values is not None:
                return route, values
        return None


async def call_handler(route: UserRoute, request: HttpRequest, client: Any) -> Any:
    """Run the user's function: ``async def`` on the loop, plain functions in a thread."""
    info = route.info
    kwargs: dict[str, Any] = {info.trigger_arg or "req": request}
    if info.client_arg:
        kwargs[info.client_arg] = client
    if info.is_async:
        result = await info.fn(**kwargs)
    else:
        result = await run_in_threadpool(info.fn, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def to_response(value: Any) -> HttpResponse | Response:
    """What a handler returned, as a response (the values Azure Functions accepts, and more).

    ``HttpResponse`` (or a Starlette ``Response``) as is; ``str`` -> 200 text/plain; ``bytes``
    -> 200 application/octet-stream; ``None`` -> 204; anything JSON-serializable -> 200 JSON.
    """
    if isinstance(value, HttpResponse | Response):
        return value
    if value is None:
        return HttpResponse(status_code=204)
    if isinstance(value, str):
        return HttpResponse(value)
    if isinstance(value, bytes | bytearray):
        return HttpResponse(bytes(value), mimetype="application/octet-stream")
    return json_response(value)
