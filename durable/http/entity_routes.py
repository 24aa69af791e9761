"""The entity routes of the management API (reference §4): signal, read, list, delete.

- ``POST /entities/{name}/{key}?op=...``: signal an operation; a JSON body (content type
  ``application/json``) is the input as is, any other body is passed as a string. 202.
- ``GET /entities/{name}/{key}``: 200 with the state, 404 if the entity has none.
- ``GET /entities`` and ``GET /entities/{name}``: a page of entities (``lastOperationTimeFrom``,
  ``lastOperationTimeTo``, ``top``, ``fetchState``; ``x-ms-continuation-token`` both ways).
- ``DELETE /entities/{name}/{key}``: signals the operation ``delete`` (built in for
  durable's entities; an Azure SDK entity's own code handles it, as on Azure). 202.
"""

from __future__ import annotations

from typing import Any

from durable.errors import InvalidInputError
from durable.http.errors import HttpError
from durable.http.management import (
    CONTINUATION_HEADER,
    Call,
    Handler,
    match_route,
    page_size_of,
    parse_json,
    parse_time,
)
from durable.http_model import HttpResponse, json_response
from durable.orchestration.entity_ids import EntityId
from durable.orchestration.entity_runtime import DELETE_OPERATION


def _entity_id(call: Call) -> EntityId:
    key = call.path["entityKey"]
    if key == "$":
        raise HttpError(400, "Entities with an empty key are not supported by durable.")
    try:
        return EntityId(call.path["entityName"], key)
    except InvalidInputError as exc:
        raise HttpError(400, str(exc)) from None


async def signal(call: Call) -> HttpResponse:
    entity = _entity_id(call)
    body = await call.request.body()
    content_type = call.request.headers.get("content-type", "")
    data: Any
    if content_type.split(";")[0].strip().lower() == "application/json":
        data = parse_json(body)
    elif body:
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "A non-JSON body must be UTF-8 text.") from None
    else:
        data = None
    await call.client.signal_entity(entity, call.arg("op") or "", data)
    return HttpResponse(status_code=202)


async def delete(call: Call) -> HttpResponse:
    await call.client.signal_entity(_entity_id(call), DELETE_OPERATION)
    return HttpResponse(status_code=202)


async def read(call: Call) -> HttpResponse:
    response = await call.client.read_entity_state(_entity_id(call))
    if not response.entity_exists:
        return HttpResponse(status_code=404)
    return json_response(response.entity_state, 200)


async def list_entities(call: Call) -> HttpResponse:
    name = call.path.get("entityName")
    if name is not None:
        try:
            name = EntityId(name, "k").name  # the name rules, lower-cased
        except InvalidInputError as exc:
            raise HttpError(400, str(exc)) from None
    fetch_state = call.flag("fetchState", False)
    result = await call.client.list_entities(
        name,
        parse_time(call, "lastOperationTimeFrom"),
        parse_time(call, "lastOperationTimeTo"),
        include_state=fetch_state,
        page_size=page_size_of(call),
        continuation_token=call.request.headers.get(CONTINUATION_HEADER) or None,
    )
    headers = {CONTINUATION_HEADER: result.continuation_token} if result.continuation_token \
        else None
    body = [entity.to_json(fetch_state) for entity in result.entities]
    return json_response(body, 200, headers)


ROUTES: tuple[tuple[str, tuple[str, ...], Handler, bool], ...] = (
    ("GET", ("entities",), list_entities, True),
    ("GET", ("entities", "{entityName}"), list_entities, True),
    ("GET", ("entities", "{entityName}", "{entityKey}"), read, True),
    ("POST", ("entities", "{entityName}", "{entityKey}"), signal, True),
    ("DELETE", ("entities", "{entityName}", "{entityKey}"), delete, True),
)


def match(method: str, segments: list[str]) -> tuple[Handler, dict[str, str], bool] | None:
    return match_route(ROUTES, method, segments)
