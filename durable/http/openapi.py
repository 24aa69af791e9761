"""The OpenAPI 3.0 document of the management API (served at ``.../openapi.json``).

Written by hand from the same table the handlers implement, so that it can be read as the
API's contract and used to fuzz it (tests/http/test_fuzz.py). Paths are relative to the server
URL ``/runtime/webhooks/durabletask``.
"""

from __future__ import annotations

import functools
from typing import Any

_STATUS_NAMES = [
    "Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending",
    "Suspended",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {
        "name": name, "in": where, "required": required or where == "path",
        "schema": schema, "description": description,
    }


_BOOL = {"type": "boolean"}
_TEXT = {"type": "string", "minLength": 1}
_INSTANCE = _param("instanceId", "path", _TEXT, "The orchestration instance ID.")
_REASON = _param("reason", "query", {"type": "string"}, "Why (recorded in history).")
_LOCATION = {
    "Location": {"schema": {"type": "string"}, "description": "Where to poll for the status."},
    "Retry-After": {"schema": {"type": "string"}, "description": "Seconds before polling."},
}
_WAIT = [
    _param("timeout", "query", {"type": "number", "minimum": 0, "maximum": 3600},
           "Seconds to wait for completion (needs pollingInterval)."),
    _param("pollingInterval", "query", {"type": "number", "minimum": 0, "maximum": 3600},
           "Seconds between completion checks (needs timeout; at most timeout)."),
    _param("returnInternalServerErrorOnFailure", "query", _BOOL,
           "Answer 500 instead of 200 if the instance failed while waiting."),
]
_CHECK_STATUS = _json(_ref("CheckStatus"), "Started; poll statusQueryGetUri.", _LOCATION)
_FINISHED = _json({}, "Finished while waiting: the output, or the status of a failed, "
                      "canceled or terminated instance.")
_TIME_FILTERS = [
    _param("createdTimeFrom", "query", {"type": "string", "format": "date-time"},
           "Only instances created at or after this time (ISO 8601)."),
    _param("createdTimeTo", "query", {"type": "string", "format": "date-time"},
           "Only instances created at or before this time (ISO 8601)."),
    _param("runtimeStatus", "query", {"type": "array", "items": {"enum": _STATUS_NAMES}},
           "Only instances in these statuses (comma-separated or repeated).", False)
    | {"style": "form", "explode": False},
]


_ENTITY_NAME = _param("entityName", "path", _TEXT, "The entity's name (case-insensitive).")
_ENTITY_KEY = _param("entityKey", "path", _TEXT, "The entity's key.")
_CONTINUATION = _param("x-ms-continuation-token", "header", {"type": "string"},
                       "The token from the previous page's response header.")
_NEXT_PAGE = {"x-ms-continuation-token": {"schema": {"type": "string"},
                                          "description": "Present when there are more pages."}}


def _entity_list(operation_id: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {
        "operationId": operation_id,
        "summary": "List entities, one page at a time, in ID order.",
        "parameters": [
            *parameters,
            _param("lastOperationTimeFrom", "query", {"type": "string", "format": "date-time"},
                   "Only entities last operated on at or after this time (ISO 8601)."),
            _param("lastOperationTimeTo", "query", {"type": "string", "format": "date-time"},
                   "Only entities last operated on at or before this time (ISO 8601)."),
            _param("fetchState", "query", _BOOL, "Include each entity's state."),
            _param("top", "query", {"type": "integer", "minimum": 1, "maximum": 1000},
                   "Page size (default 100)."),
            _CONTINUATION,
        ],
        "responses": {
            "200": _json({"type": "array", "items": _ref("Entity")}, "A page.", _NEXT_PAGE),
            "400": _error("Bad filter, name or continuation token."),
        },
    }}


def _entity_paths() -> dict[str, Any]:
    signal_body = {
        "required": False,
        "description": "The operation's input: JSON with application/json, else text.",
        "content": {"application/json": {"schema": {}}, "text/plain": {"schema": {
            "type": "string"}}},
    }
    accepted = {"202": {"description": "Accepted."}}
    bad = _error("Bad entity name or key, invalid JSON, or an unknown entity.")
    return {
        "/entities": _entity_list("listEntities", []),
        "/entities/{entityName}": _entity_list("listEntitiesByName", [_ENTITY_NAME]),
        "/entities/{entityName}/{entityKey}": {
            "get": {
                "operationId": "readEntity",
                "summary": "An entity's state.",
                "parameters": [_ENTITY_NAME, _ENTITY_KEY],
                "responses": {
                    "200": _json({}, "The state (any JSON value)."),
                    "400": bad,
                    "404": {"description": "The entity has no state (empty body)."},
                },
            },
            "post": {
                "operationId": "signalEntity",
                "summary": "Signal an operation (one-way).",
                "parameters": [_ENTITY_NAME, _ENTITY_KEY,
                               _param("op", "query", {"type": "string"}, "Operation name.")],
                "requestBody": signal_body,
                "responses": {**accepted, "400": bad,
                              "413": _error("The body is larger than the server's limit.")},
            },
            "delete": {
                "operationId": "deleteEntity",
                "summary": "Signal the built-in delete operation.",
                "parameters": [_ENTITY_NAME, _ENTITY_KEY],
                "responses": {**accepted, "400": bad},
            },
        },
    }


def _control(operation: str, summary: str, conflict: str | None = None) -> dict[str, Any]:
    responses = {
        "202": {"description": "Accepted."},
        "400": _error("Bad request."),
        "404": _error("No such instance."),
        "410": _error("The instance already finished."),
    }
    if conflict:
        responses["409"] = _error(conflict)
    return {"post": {
        "operationId": operation, "summary": summary, "parameters": [_INSTANCE, _REASON],
        "responses": responses,
    }}


@functools.cache
def openapi_document() -> dict[str, Any]:
    start = {
        "operationId": "startNew",
        "summary": "Start an orchestration (with this instance ID, if given).",
        "parameters": [_param("functionName", "path", _TEXT, "The orchestrator's name."), *_WAIT],
        "requestBody": {
            "required": False,
            "description": "The orchestration's input: any JSON value, passed as is.",
            "content": {"application/json": {"schema": {}}},
        },
        "responses": {
            "200": _FINISHED,
            "202": _CHECK_STATUS,
            "400": _error("Invalid JSON, unknown orchestrator or bad instance ID."),
            "409": _error("An instance with this ID is Pending, Running or Suspended."),
            "413": _error("The body is larger than the server's limit."),
        },
    }
    start_with_id = dict(start, operationId="startNewWithId",
                         parameters=[*start["parameters"], _INSTANCE])
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "durable management API",
            "version": "1.0",
            "description": "The Durable Functions HTTP management API, served by durable.",
        },
        "servers": [{"url": "/runtime/webhooks/durabletask"}],
        "components": {
            "securitySchemes": {
                "code": {"type": "apiKey", "in": "query", "name": "code"},
                "functionsKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
            },
            "schemas": _schemas(),
        },
        "security": [{}, {"code": []}, {"functionsKey": []}],
        "paths": {
            "/orchestrators/{functionName}": {"post": start},
            "/orchestrators/{functionName}/{instanceId}": {"post": start_with_id},
            "/instances": {
                "get": {
                    "operationId": "listInstances",
                    "summary": "Query instances, one page at a time.",
                    "parameters": [
                        *_TIME_FILTERS,
                        _param("instanceIdPrefix", "query", {"type": "string"},
                               "Only instances whose ID starts with this."),
                        _param("showInput", "query", _BOOL, "Include inputs (default true)."),
                        _param("top", "query", {"type": "integer", "minimum": 1,
                                                "maximum": 1000}, "Page size (default 100)."),
                        _param("x-ms-continuation-token", "header", {"type": "string"},
                               "The token from the previous page's response header."),
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Status")}, "A page.", {
                            "x-ms-continuation-token": {
                                "schema": {"type": "string"},
                                "description": "Present when there are more pages.",
                            }
                        }),
                        "400": _error("Bad filter or continuation token."),
                    },
                },
                "delete": {
                    "operationId": "purgeInstances",
                    "summary": "Purge finished instances created in a time range.",
                    "parameters": [
                        dict(_TIME_FILTERS[0], required=True), *_TIME_FILTERS[1:],
                    ],
                    "responses": {
                        "200": _json(_ref("PurgeResult"), "Purged."),
                        "400": _error("createdTimeFrom missing or bad filter."),
                        "404": _error("Nothing matched."),
                    },
                },
            },
            "/instances/{instanceId}": {
                "get": {
                    "operationId": "getStatus",
                    "summary": "An instance's status.",
                    "parameters": [
                        _INSTANCE,
                        _param("showHistory", "query", _BOOL, "Include history events."),
                        _param("showHistoryOutput", "query", _BOOL,
                               "Include inputs and results in history events."),
                        _param("showInput", "query", _BOOL, "Include the input (default true)."),
                        _param("returnInternalServerErrorOnFailure", "query", _BOOL,
                               "Answer 500 instead of 200 for a failed instance."),
                    ],
                    "responses": {
                        "200": _json(_ref("Status"), "Finished (Completed, Failed, Canceled, "
                                                     "Terminated)."),
                        "202": _json(_ref("Status"), "Pending, Running, Suspended or "
                                                     "ContinuedAsNew.", _LOCATION),
                        "400": _error("Bad query parameter."),
                        "404": {"description": "No such instance (empty body)."},
                    },
                },
                "delete": {
                    "operationId": "purgeInstance",
                    "summary": "Delete an instance and its history.",
                    "parameters": [_INSTANCE],
                    "responses": {
                        "200": _json(_ref("PurgeResult"), "Purged."),
                        "404": _error("No such instance."),
                    },
                },
            },
            "/instances/{instanceId}/raiseEvent/{eventName}": {"post": {
                "operationId": "raiseEvent",
                "summary": "Send an event to a running instance.",
                "parameters": [_INSTANCE, _param("eventName", "path", _TEXT, "Event name.")],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {}}},
                },
                "responses": {
                    "202": {"description": "Accepted."},
                    "400": _error("Not application/json, or invalid JSON."),
                    "404": _error("No such instance."),
                    "410": _error("The instance already finished."),
                    "413": _error("The body is larger than the server's limit."),
                },
            }},
            "/instances/{instanceId}/terminate": _control("terminate", "Terminate."),
            "/instances/{instanceId}/suspend": _control(
                "suspend", "Suspend.", "The instance is already Suspended."),
            "/instances/{instanceId}/resume": _control(
                "resume", "Resume.", "The instance is not Suspended (Pending or Running)."),
            "/instances/{instanceId}/restart": {"post": {
                "operationId": "restart",
                "summary": "Start the instance's orchestrator again with its original input.",
                "parameters": [
                    _INSTANCE,
                    _param("restartWithNewInstanceId", "query", _BOOL,
                           "Use a new instance ID (default true)."),
                    *_WAIT,
                ],
                "responses": {
                    "200": _FINISHED,
                    "202": _CHECK_STATUS,
                    "400": _error("Bad query parameter."),
                    "404": _error("No such instance."),
                    "409": _error("Restarting with the same ID while it is still running."),
                },
            }},
            "/instances/{instanceId}/rewind": {"post": {
                "operationId": "rewind",
                "summary": "Run a Failed instance again from where it failed.",
                "parameters": [_INSTANCE, _REASON],
                "responses": {
                    "202": {"description": "Accepted."},
                    "400": _error("Bad request."),
                    "404": _error("No such instance."),
                    "409": _error("The instance is still running."),
                    "410": _error("The instance completed, or was canceled or terminated."),
                },
            }},
            **_entity_paths(),
        },
    }


def _schemas() -> dict[str, Any]:
    nullable_text = {"type": "string", "nullable": True}
    return {
        "Error": {
            "type": "object",
            "required": ["Message"],
            "properties": {
                "Message": {"type": "string"},
                "ExceptionMessage": {"type": "string"},
                "ExceptionType": {"type": "string"},
            },
        },
        "Entity": {
            "type": "object",
            "required": ["entityId", "lastOperationTime"],
            "properties": {
                "entityId": {
                    "type": "object",
                    "required": ["name", "key"],
                    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                },
                "lastOperationTime": {"type": "string"},
                "state": {"nullable": True},
            },
        },
        "PurgeResult": {
            "type": "object",
            "required": ["instancesDeleted"],
            "properties": {"instancesDeleted": {"type": "integer", "minimum": 0}},
        },
        "CheckStatus": {
            "type": "object",
            "required": [
                "id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
                "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri",
            ],
            "properties": {key: {"type": "string"} for key in (
                "id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
                "rewindPostUri", "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri",
                "resumePostUri",
            )},
        },
        "Status": {
            "type": "object",
            "required": ["name", "instanceId", "runtimeStatus", "createdTime",
                         "lastUpdatedTime"],
            "properties": {
                "name": {"type": "string"},
                "instanceId": {"type": "string"},
                "runtimeStatus": {"type": "string", "enum": _STATUS_NAMES},
                "input": {"nullable": True},
                "customStatus": {"nullable": True},
                "output": {"nullable": True},
                "createdTime": nullable_text,
                "lastUpdatedTime": nullable_text,
                "historyEvents": {"type": "array", "items": {"type": "object"}},
            },
        },
    }
