"""Where ``durable instances ...`` acts: a storage URL directly, or a running server over HTTP.

Both targets answer in the Durable Functions HTTP API's JSON shape (``instanceId``,
``runtimeStatus``, ``historyEvents``, ...) plus ``failureDetails`` when known, so the
commands render and ``--json`` prints the same thing whichever target was used. Errors are
raised as durable's typed errors (an HTTP status is mapped back to the error it stands for).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from durable.errors import (
    DurableError,
    InstanceAlreadyExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    InstanceStatusConflictError,
    InvalidInputError,
    StorageError,
)
from durable.status import DurableOrchestrationStatus, OrchestrationRuntimeStatus


class UnauthorizedError(DurableError):
    """The server wants a key (--key or DURABLE_KEY) and none, or a wrong one, was given."""


@dataclass(slots=True)
class ListFilter:
    statuses: list[OrchestrationRuntimeStatus] = field(default_factory=list)
    name: str | None = None
    prefix: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    newest_first: bool = True


class Target(Protocol):
    async def list_instances(self, filters: ListFilter, page_size: int, token: str | None
                   ) -> tuple[list[dict[str, Any]], str | None]: ...
    async def show(self, instance_id: str, history: bool = False) -> dict[str, Any] | None: ...
    async def start(self, name: str, instance_id: str | None, data: Any) -> str: ...
    async def raise_event(self, instance_id: str, event: str, data: Any) -> None: ...
    async def control(self, instance_id: str, operation: str, reason: str | None) -> None: ...
    async def restart(self, instance_id: str, new_id: bool) -> str: ...
    async def purge(self, instance_id: str) -> int: ...
    async def purge_by(self, filters: ListFilter) -> int: ...
    async def rewind(self, instance_id: str, reason: str | None) -> None: ...
    async def export(self, instance_id: str) -> dict[str, Any] | None: ...
    async def list_entities(self, name: str | None, last_from: datetime | None,
                            last_to: datetime | None, state: bool, page_size: int,
                            token: str | None) -> tuple[list[dict[str, Any]], str | None]: ...
    async def read_entity(self, name: str, key: str) -> tuple[bool, Any]: ...
    async def signal_entity(self, name: str, key: str, operation: str, data: Any) -> None: ...
    async def clean_entities(self, remove_empty: bool, release_locks: bool
                             ) -> dict[str, int]: ...
    async def close(self) -> None: ...


def status_json(status: DurableOrchestrationStatus) -> dict[str, Any]:
    out = status.to_json()
    if status.failure_details:
        out["failureDetails"] = status.failure_details
    return out


class StorageTarget:
    """Straight to storage through :class:`durable.DurableOrchestrationClient` (no worker
    here: a started instance runs when a worker of its app picks it up)."""

    def __init__(self, url: str) -> None:
        from durable.storage import open_backend

        self.url = url
        self.backend = open_backend(url)
        self._client: Any = None

    async def open(self) -> None:
        from durable.client import DurableOrchestrationClient

        await self.backend.open()
        self._client = DurableOrchestrationClient(self.backend)

    async def list_instances(self, filters: ListFilter, page_size: int, token: str | None
                   ) -> tuple[list[dict[str, Any]], str | None]:
        page, next_token = await self._client.get_status_page(
            filters.created_from, filters.created_to, filters.statuses or None, filters.prefix,
            page_size=page_size, continuation_token=token, show_input=False,
            name=filters.name, newest_first=filters.newest_first,
        )
        return [status_json(s) for s in page], next_token

    async def show(self, instance_id: str, history: bool = False) -> dict[str, Any] | None:
        status = await self._client.get_status(instance_id, show_history=history,
                                               show_history_output=history)
        return status_json(status) if status else None

    async def start(self, name: str, instance_id: str | None, data: Any) -> str:
        return str(await self._client.start_new(name, instance_id, data))

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        await self._client.raise_event(instance_id, event, data)

    async def control(self, instance_id: str, operation: str, reason: str | None) -> None:
        status = await self._client.get_status(instance_id, show_input=False)
        if not status:
            raise InstanceNotFoundError(instance_id)
        runtime = status.runtime_status
        if runtime is not None and runtime.is_terminal:
            raise InstanceNotRunningError(instance_id, runtime.value)
        await getattr(self._client, operation)(instance_id, reason)

    async def restart(self, instance_id: str, new_id: bool) -> str:
        return str(await self._client.restart(instance_id, restart_with_new_instance_id=new_id))

    async def purge(self, instance_id: str) -> int:
        result = await self._client.purge_instance_history(instance_id)
        if not result.instances_deleted:
            raise InstanceNotFoundError(instance_id)
        return int(result.instances_deleted)

    async def purge_by(self, filters: ListFilter) -> int:
        result = await self._client.purge_instance_history_by(
            filters.created_from, filters.created_to, filters.statuses or None)
        return int(result.instances_deleted)

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        await self._client.rewind(instance_id, reason)

    async def export(self, instance_id: str) -> dict[str, Any] | None:
        from durable.testing.replay import export_history

        record = await self.backend.get_instance(instance_id)
        if record is None:
            return None
        events = await self.backend.get_history(instance_id)
        return export_history(record.instance_id, record.name, record.execution_id,
                              record.status.value, events)

    async def list_entities(self, name: str | None, last_from: datetime | None,
                            last_to: datetime | None, state: bool, page_size: int,
                            token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        result = await self._client.list_entities(
            name, last_from, last_to, include_state=state, page_size=page_size,
            continuation_token=token)
        return [e.to_json(state) for e in result.entities], result.continuation_token

    async def read_entity(self, name: str, key: str) -> tuple[bool, Any]:
        from durable.orchestration.entity_ids import EntityId

        response = await self._client.read_entity_state(EntityId(name, key))
        return response.entity_exists, response.entity_state

    async def signal_entity(self, name: str, key: str, operation: str, data: Any) -> None:
        from durable.orchestration.entity_ids import EntityId

        await self._client.signal_entity(EntityId(name, key), operation, data)

    async def clean_entities(self, remove_empty: bool, release_locks: bool) -> dict[str, int]:
        result = await self._client.clean_entity_storage(remove_empty, release_locks)
        return {"emptyEntitiesRemoved": result.empty_entities_removed,
                "orphanedLocksReleased": result.orphaned_locks_released}

    async def close(self) -> None:
        await self.backend.close()


class HttpTarget:
    """A running ``durable run`` (or anything serving the management API) at ``url``."""

    def __init__(self, url: str, key: str | None, timeout: float = 30.0) -> None:
        import httpx

        from durable.management_urls import WEBHOOK_PATH

        self.url = url.rstrip("/")
        headers = {"x-functions-key": key} if key else {}
        self.http = httpx.AsyncClient(base_url=self.url + WEBHOOK_PATH, headers=headers,
                                      timeout=timeout)

    async def open(self) -> None:
        return None

    async def _send(self, method: str, path: str, *, instance_id: str = "", **kwargs: Any
                    ) -> Any:
        import httpx

        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StorageError(f"Cannot reach {self.url}: {exc}") from exc
        if response.status_code < 400:
            return response
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        message = body.get("Message") or response.text or f"HTTP {response.status_code}"
        code = response.status_code
        if code == 401:
            raise UnauthorizedError(f"{self.url} wants a key: give --key or DURABLE_KEY.")
        if code == 404:
            if instance_id:
                raise InstanceNotFoundError(instance_id)
            raise DurableError(message or "Not found.")
        if code == 409:
            # durable's body names the status; a start (or restart) collided with a running
            # instance, or a suspend/resume met the wrong status (the caller tells which).
            raise InstanceAlreadyExistsError(instance_id or "?",
                                             str(body.get("runtimeStatus") or "running"))
        if code == 410:
            raise InstanceNotRunningError(instance_id, "finished")
        if code == 400:
            raise InvalidInputError(message)
        raise DurableError(f"{self.url} answered {code}: {message}")

    @staticmethod
    def _segment(text: str) -> str:
        return quote(text, safe="")

    async def list_instances(self, filters: ListFilter, page_size: int, token: str | None
                   ) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"top": page_size, "showInput": "false"}
        if filters.statuses:
            params["runtimeStatus"] = ",".join(s.value for s in filters.statuses)
        if filters.prefix:
            params["instanceIdPrefix"] = filters.prefix
        if filters.name:
            params["name"] = filters.name
        if filters.newest_first:
            params["newestFirst"] = "true"
        if filters.created_from:
            params["createdTimeFrom"] = filters.created_from.isoformat()
        if filters.created_to:
            params["createdTimeTo"] = filters.created_to.isoformat()
        headers = {"x-ms-continuation-token": token} if token else {}
        response = await self._send("GET", "/instances", params=params, headers=headers)
        return response.json(), response.headers.get("x-ms-continuation-token") or None

    async def show(self, instance_id: str, history: bool = False) -> dict[str, Any] | None:
        params = {"showHistory": "true", "showHistoryOutput": "true" if history else "false"}
        try:
            response = await self._send("GET", f"/instances/{self._segment(instance_id)}",
                                        params=params, instance_id=instance_id)
        except InstanceNotFoundError:
            return None
        status: dict[str, Any] = response.json()
        events = status.get("historyEvents") or []
        for event in events:
            if event.get("EventType") == "ExecutionCompleted" and event.get("FailureDetails"):
                status["failureDetails"] = event["FailureDetails"]
        if not history:
            status.pop("historyEvents", None)
        return status

    async def start(self, name: str, instance_id: str | None, data: Any) -> str:
        path = f"/orchestrators/{self._segment(name)}"
        if instance_id:
            path += f"/{self._segment(instance_id)}"
        response = await self._send("POST", path, content=json.dumps(data),
                                    headers={"Content-Type": "application/json"},
                                    instance_id=instance_id or "")
        return str(response.json()["id"])

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        await self._send("POST", f"/instances/{self._segment(instance_id)}/raiseEvent/"
                                 f"{self._segment(event)}", content=json.dumps(data),
                         headers={"Content-Type": "application/json"}, instance_id=instance_id)

    async def control(self, instance_id: str, operation: str, reason: str | None) -> None:
        params = {"reason": reason} if reason else None
        try:
            await self._send("POST", f"/instances/{self._segment(instance_id)}/{operation}",
                             params=params, instance_id=instance_id)
        except InstanceAlreadyExistsError as exc:  # 409: suspend/resume in the wrong status
            raise InstanceStatusConflictError(instance_id, exc.status, operation) from None

    async def restart(self, instance_id: str, new_id: bool) -> str:
        response = await self._send(
            "POST", f"/instances/{self._segment(instance_id)}/restart",
            params={"restartWithNewInstanceId": "true" if new_id else "false"},
            instance_id=instance_id)
        return str(response.json()["id"])

    async def purge(self, instance_id: str) -> int:
        response = await self._send("DELETE", f"/instances/{self._segment(instance_id)}",
                                    instance_id=instance_id)
        return int(response.json()["instancesDeleted"])

    async def purge_by(self, filters: ListFilter) -> int:
        if filters.created_from is None:
            raise InvalidInputError("Purging through a server needs --from.")
        params: dict[str, Any] = {"createdTimeFrom": filters.created_from.isoformat()}
        if filters.created_to:
            params["createdTimeTo"] = filters.created_to.isoformat()
        if filters.statuses:
            params["runtimeStatus"] = ",".join(s.value for s in filters.statuses)
        try:
            response = await self._send("DELETE", "/instances", params=params)
        except DurableError as exc:
            if "No finished instances" in str(exc):
                return 0
            raise
        return int(response.json()["instancesDeleted"])

    async def rewind(self, instance_id: str, reason: str | None) -> None:
        params = {"reason": reason} if reason else None
        try:
            await self._send("POST", f"/instances/{self._segment(instance_id)}/rewind",
                             params=params, instance_id=instance_id)
        except InstanceAlreadyExistsError:  # 409: still running
            raise InstanceNotFailedError(instance_id, "running") from None
        except InstanceNotRunningError:  # 410: finished without failing
            raise InstanceNotFailedError(instance_id, "finished") from None

    async def export(self, instance_id: str) -> dict[str, Any] | None:
        raise InvalidInputError(
            "export-history reads storage directly: give --storage, not --url.")

    async def list_entities(self, name: str | None, last_from: datetime | None,
                            last_to: datetime | None, state: bool, page_size: int,
                            token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"top": page_size, "fetchState": "true" if state else "false"}
        if last_from:
            params["lastOperationTimeFrom"] = last_from.isoformat()
        if last_to:
            params["lastOperationTimeTo"] = last_to.isoformat()
        headers = {"x-ms-continuation-token": token} if token else {}
        path = f"/entities/{self._segment(name)}" if name else "/entities"
        response = await self._send("GET", path, params=params, headers=headers)
        return response.json(), response.headers.get("x-ms-continuation-token") or None

    async def read_entity(self, name: str, key: str) -> tuple[bool, Any]:
        import httpx

        try:
            response = await self.http.get(
                f"/entities/{self._segment(name)}/{self._segment(key)}")
        except httpx.HTTPError as exc:
            raise StorageError(f"Cannot reach {self.url}: {exc}") from exc
        if response.status_code == 404:
            return False, None
        if response.status_code >= 400:
            await self._send("GET", f"/entities/{self._segment(name)}/{self._segment(key)}")
        return True, response.json()

    async def signal_entity(self, name: str, key: str, operation: str, data: Any) -> None:
        await self._send("POST", f"/entities/{self._segment(name)}/{self._segment(key)}",
                         params={"op": operation}, content=json.dumps(data),
                         headers={"Content-Type": "application/json"})

    async def clean_entities(self, remove_empty: bool, release_locks: bool) -> dict[str, int]:
        raise InvalidInputError("clean works on storage directly: give --storage, not --url.")

    async def close(self) -> None:
        await self.http.aclose()
