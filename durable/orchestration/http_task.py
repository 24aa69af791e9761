"""Durable HTTP calls (``context.call_http``), with Durable Functions' asynchronous 202 pattern.

The request itself runs in the built-in activity ``BuiltIn::HttpActivity`` (see
:mod:`durable.worker.http_activity`), so the orchestrator stays deterministic: every response is an
activity result in history. When a response is ``202 Accepted`` with a ``Location`` header, the
task waits on a durable timer (``Retry-After`` seconds, else 30 s as Durable Functions'
``defaultAsyncRequestSleepTimeMilliseconds``) and then GETs the location, again and again, until
a response is not a 202. The orchestrator sees only that final response.

Every poll is an activity plus a timer with its own sequence number, scheduled as the previous
step completes (the way :class:`~durable.orchestration.tasks.RetryableTask` schedules retries),
so replay walks the same path.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from durable.errors import InvalidInputError
from durable.history import to_timestamp
from durable.orchestration.tasks import CompoundTask, TaskBase, TaskState, TimerTask

if TYPE_CHECKING:
    from durable.orchestration.context import DurableOrchestrationContext

HTTP_ACTIVITY_NAME = "BuiltIn::HttpActivity"
DEFAULT_ASYNC_SLEEP_SECONDS = 30.0
_METHOD_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")  # RFC 9110
# Headers not carried over to the GETs that poll a 202's Location: the key for the first call is
# often a function key, while the status endpoint wants another (as Durable Functions does).
_NOT_COPIED_TO_POLLS = frozenset({"x-functions-key", "content-type", "content-length"})


def build_request(
    method: str,
    uri: str,
    content: Any = None,
    headers: Mapping[str, str] | None = None,
    is_raw_str: bool = False,
) -> dict[str, Any]:
    """The activity input for one call; raises InvalidInputError at the call site if invalid.

    As in the Azure Python SDK, ``content`` is sent as JSON text (``json.dumps``) unless it is
    a ``str`` and ``is_raw_str`` is set; a JSON body gets ``Content-Type: application/json``
    unless the caller set a content type.
    """
    if not isinstance(method, str) or not method or not set(method) <= _METHOD_CHARS:
        raise InvalidInputError(f"call_http needs an HTTP method such as 'GET', not {method!r}.")
    if not isinstance(uri, str):
        raise InvalidInputError(f"call_http needs the URI as a string, not {type(uri).__name__}.")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(f"call_http needs an absolute http(s) URI, not {uri!r}.")
    if is_raw_str and content is not None and not isinstance(content, str):
        raise TypeError("call_http: is_raw_str=True needs str content.")
    sent_headers: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidInputError("call_http headers must map strings to strings.")
        sent_headers[name] = value
    body: str | None = None
    if content is not None:
        if is_raw_str:
            body = content
        else:
            try:
                body = json.dumps(content)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"call_http content is not JSON-serializable: {exc}"
                ) from None
            if not any(name.lower() == "content-type" for name in sent_headers):
                sent_headers["Content-Type"] = "application/json"
    return {"method": method.upper(), "uri": uri, "content": body, "headers": sent_headers}


def header(response: Mapping[str, Any], name: str) -> str | None:
    """A response header by case-insensitive name (the first value if it was repeated)."""
    headers = response.get("headers") or {}
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait per a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = to_timestamp(parsedate_to_datetime(text)) - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def poll_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a request that the GETs polling its 202's ``Location`` carry over."""
    return {name: value for name, value in headers.items()
            if name.lower() not in _NOT_COPIED_TO_POLLS}


def next_poll(uri: str, response: Any, now: float) -> tuple[str, float] | None:
    """What a response to a request for ``uri`` asks for under the asynchronous 202 pattern:
    the URI to GET next and the seconds to wait first, or None when the response is the
    final one (not a 202, or a 202 without ``Location``)."""
    if not isinstance(response, dict) or response.get("statusCode") != 202:
        return None
    location = header(response, "Location")
    if location is None:
        return None
    delay = retry_after_seconds(header(response, "Retry-After"), now)
    return urljoin(uri, location), DEFAULT_ASYNC_SLEEP_SECONDS if delay is None else delay


class HttpPollingTask(CompoundTask):
    """``call_http``: one activity call, then timer + poll pairs while the answer is a 202."""

    __slots__ = ("_asynchronous", "_context", "_poll_headers", "_uri")

    def __init__(
        self,
        context: DurableOrchestrationContext,
        request: dict[str, Any],
        asynchronous_patterns: bool = True,
    ) -> None:
        super().__init__([])
        self._context = context
        self._asynchronous = asynchronous_patterns
        self._uri: str = request["uri"]
        self._poll_headers = poll_headers(request["headers"])
        self._call(request)

    def _adopt(self, child: TaskBase) -> None:
        self.children.append(child)
        child._add_parent(self)
        if child.is_completed:
            self._on_child_done(child)

    def _call(self, request: dict[str, Any]) -> None:
        self._adopt(self._context.call_activity(HTTP_ACTIVITY_NAME, request))

    def _on_child_done(self, child: TaskBase) -> None:
        if self.is_completed:
            return
        if child.state == TaskState.FAILED:
            self._set_exception(child.result)
            return
        if isinstance(child, TimerTask):
            self._call({"method": "GET", "uri": self._uri, "content": None,
                        "headers": self._poll_headers})
            return
        response = child.result
        now = self._context.current_utc_datetime.timestamp()
        follow = next_poll(self._uri, response, now) if self._asynchronous else None
        if follow is None:
            self._set_value(response)
            return
        self._uri, wait = follow
        self._adopt(self._context.create_timer(timedelta(seconds=wait)))
