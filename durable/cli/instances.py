"""``durable instances list|show|history|start|raise|terminate|suspend|resume|restart|purge|
rewind|export-history``.

Each command works against a storage URL (``--storage`` / ``DURABLE_STORAGE``) or a running
server (``--url`` / ``DURABLE_URL``, key from ``--key`` / ``DURABLE_KEY``). Output is a Rich
table, or JSON with ``--json``. Exit codes (for scripts; docs/operations.md):

====  =====================================================================================
0     success
1     any other error (storage or server unreachable, unexpected answer)
2     usage error (bad option, bad JSON, bad time), as click reports it
3     no such instance
4     conflict: the ID is taken by a running instance, the instance already finished,
      (suspend) it is already Suspended, (resume) it is not Suspended, or (rewind) it did
      not fail
5     ``--wait``: the instance finished, but not Completed (Failed, Terminated, Canceled)
6     ``--wait``: it did not finish within ``--timeout``
7     the server wants a key (or a different one)
====  =====================================================================================

Entity commands (``durable entities ...``) are in :mod:`durable.cli.entities`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from durable.cli import render
from durable.cli.targets import HttpTarget, ListFilter, StorageTarget, Target, UnauthorizedError
from durable.errors import (
    DurableError,
    InstanceAlreadyExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    InstanceStatusConflictError,
    InvalidInputError,
)
from durable.status import OrchestrationRuntimeStatus

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT = 0, 1, 2, 3, 4
EXIT_NOT_COMPLETED, EXIT_TIMEOUT, EXIT_UNAUTHORIZED = 5, 6, 7

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Fail(click.ClickException):
    """A command failure with the exit code of the module docstring."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click reads it per instance


def parse_when(text: str | None) -> datetime | None:
    """ISO 8601 (UTC if no zone) or a relative age like ``30m``, ``2h``, ``7d`` (ago)."""
    if not text:
        return None
    match = _RELATIVE.match(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        return datetime.now(UTC) - delta
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither ISO 8601 nor an age like 2h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{what} is not valid JSON: {exc}") from None


def _statuses(values: tuple[str, ...]) -> list[OrchestrationRuntimeStatus]:
    by_name = {s.value.lower(): s for s in OrchestrationRuntimeStatus}
    found = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                status = by_name.get(part.strip().lower())
                if status is None:
                    raise click.BadParameter(
                        f"unknown status {part!r}; use "
                        + ", ".join(s.value for s in OrchestrationRuntimeStatus))
                found.append(status)
    return found


def target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--key", envvar="DURABLE_KEY", default=None,
                        help="Key for --url beyond loopback [env DURABLE_KEY].")(func)
    func = click.option("--url", envvar="DURABLE_URL", default=None,
                        help="A running server (durable run), e.g. http://127.0.0.1:7071 "
                             "[env DURABLE_URL].")(func)
    func = click.option("--storage", envvar="DURABLE_STORAGE", default=None,
                        help="Storage URL to act on directly [env DURABLE_STORAGE; default: "
                             "./durable.db].")(func)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def run_with_target(storage: str | None, url: str | None, key: str | None,
                    work: Callable[[Target], Awaitable[int | None]]) -> None:
    """Open the target, run ``work``, map durable's errors to exit codes."""
    if storage and url:
        raise click.UsageError("Give --storage or --url, not both.")

    async def main() -> int | None:
        target: StorageTarget | HttpTarget
        if url:
            target = HttpTarget(url, key)
        else:
            from durable.storage import default_url

            target = StorageTarget(storage or default_url())
        await target.open()
        try:
            return await work(target)
        finally:
            await target.close()

    try:
        code = asyncio.run(main())
    except InstanceNotFoundError as exc:
        raise Fail(str(exc), EXIT_NOT_FOUND) from exc
    except (InstanceAlreadyExistsError, InstanceNotRunningError, InstanceNotFailedError,
            InstanceStatusConflictError) as exc:
        raise Fail(str(exc), EXIT_CONFLICT) from exc
    except UnauthorizedError as exc:
        raise Fail(str(exc), EXIT_UNAUTHORIZED) from exc
    except InvalidInputError as exc:
        raise Fail(str(exc), EXIT_USAGE) from exc
    except DurableError as exc:
        raise Fail(str(exc), EXIT_ERROR) from exc
    if code:
        sys.exit(code)


@click.group()
def instances() -> None:
    """See and steer orchestration instances (on storage, or through a server)."""


@instances.command("list")
@target_options
@click.option("--status", "-s", "status", multiple=True,
              help="Runtime status (repeat, or comma-separate): Running, Completed, Failed, ...")
@click.option("--name", "-n", default=None, help="Orchestrator name (exact).")
@click.option("--prefix", "-p", default=None, help="Instance ID prefix.")
@click.option("--from", "created_from", default=None,
              help="Created at or after: ISO 8601 or an age (30m, 2h, 7d).")
@click.option("--to", "created_to", default=None, help="Created at or before (same forms).")
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@click.option("--top", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Instances per page.")
@click.option("--token", default=None, help="Continuation token of the next page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page.")
def list_command(as_json: bool, storage: str | None, url: str | None, key: str | None,
                 status: tuple[str, ...], name: str | None, prefix: str | None,
                 created_from: str | None, created_to: str | None, oldest_first: bool,
                 top: int, token: str | None, all_pages: bool) -> None:
    """List instances, newest first, with filters and paging."""
    filters = ListFilter(_statuses(status), name, prefix, parse_when(created_from),
                         parse_when(created_to), newest_first=not oldest_first)

    async def work(target: Target) -> None:
        found: list[dict[str, Any]] = []
        next_token = token
        while True:
            page, next_token = await target.list_instances(filters, top, next_token)
            found.extend(page)
            if not all_pages or next_token is None:
                break
        if as_json:
            render.print_json({"instances": found, "continuationToken": next_token})
            return
        out = render.console()
        out.print(render.instances_table(found))
        tail = f"{len(found)} instance(s)"
        if next_token:
            tail += f"; next page: --token {next_token}"
        out.print(tail, style="dim")

    run_with_target(storage, url, key, work)


@instances.command()
@target_options
@click.argument("instance_id")
def show(as_json: bool, storage: str | None, url: str | None, key: str | None,
         instance_id: str) -> None:
    """Status, input, output, custom status and failure of one instance."""

    async def work(target: Target) -> None:
        item = await target.show(instance_id)
        if item is None:
            raise InstanceNotFoundError(instance_id)
        if as_json:
            render.print_json(item)
        else:
            render.show_instance(render.console(), item)

    run_with_target(storage, url, key, work)


@instances.command()
@target_options
@click.argument("instance_id")
def history(as_json: bool, storage: str | None, url: str | None, key: str | None,
            instance_id: str) -> None:
    """The history events of one instance (inputs and results included)."""

    async def work(target: Target) -> None:
        item = await target.show(instance_id, history=True)
        if item is None:
            raise InstanceNotFoundError(instance_id)
        events = item.get("historyEvents") or []
        if as_json:
            render.print_json(events)
        else:
            render.console().print(render.history_table(events))

    run_with_target(storage, url, key, work)


async def _wait(target: Target, instance_id: str, timeout: float, live: bool
                ) -> tuple[dict[str, Any], bool]:
    """Poll until the instance finishes; a live status line on a terminal."""
    deadline = time.monotonic() + timeout
    began = time.monotonic()
    delay = 0.05
    spinner: Any = None
    if live:
        from rich.status import Status

        spinner = Status("waiting…", console=render.console())
        spinner.start()
    try:
        while True:
            item = await target.show(instance_id)
            if item is None:
                raise InstanceNotFoundError(instance_id)
            status = item.get("runtimeStatus")
            if status in ("Completed", "Failed", "Terminated", "Canceled"):
                return item, True
            if spinner is not None:
                custom = item.get("customStatus")
                extra = f"  custom status: {json.dumps(custom)}" if custom is not None else ""
                spinner.update(f"{instance_id}: {status}  {time.monotonic() - began:.1f}s{extra}")
            if time.monotonic() >= deadline:
                return item, False
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)
    finally:
        if spinner is not None:
            spinner.stop()


@instances.command()
@target_options
@click.argument("name")
@click.option("--id", "instance_id", default=None, help="Instance ID (default: a new one).")
@click.option("--input", "input_json", default=None, help="Input as JSON.")
@click.option("--wait", is_flag=True, help="Wait for the result, with a live status line.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds --wait waits.")
def start(as_json: bool, storage: str | None, url: str | None, key: str | None, name: str,
          instance_id: str | None, input_json: str | None, wait: bool, timeout: float) -> None:
    """Start orchestration NAME (it runs when a worker of its app picks it up)."""
    data = parse_json(input_json, "--input")

    async def work(target: Target) -> int | None:
        started = await target.start(name, instance_id, data)
        if not wait:
            if as_json:
                render.print_json({"id": started})
            else:
                click.echo(started)
            return None
        item, finished = await _wait(target, started, timeout,
                                     live=not as_json and sys.stdout.isatty())
        if as_json:
            render.print_json(item)
        else:
            render.show_instance(render.console(), item)
        if not finished:
            click.echo(f"{started} did not finish within {timeout:g}s", err=True)
            return EXIT_TIMEOUT
        return EXIT_OK if item.get("runtimeStatus") == "Completed" else EXIT_NOT_COMPLETED

    run_with_target(storage, url, key, work)


@instances.command("raise")
@target_options
@click.argument("instance_id")
@click.argument("event")
@click.option("--data", "data_json", default=None, help="Event payload as JSON.")
def raise_command(as_json: bool, storage: str | None, url: str | None, key: str | None,
                  instance_id: str, event: str, data_json: str | None) -> None:
    """Raise EVENT on a running instance."""
    data = parse_json(data_json, "--data")

    async def work(target: Target) -> None:
        await target.raise_event(instance_id, event, data)
        _done(as_json, {"instanceId": instance_id, "event": event, "raised": True},
              f"raised {event!r} on {instance_id}")

    run_with_target(storage, url, key, work)


def _done(as_json: bool, value: dict[str, Any], text: str) -> None:
    if as_json:
        render.print_json(value)
    else:
        click.echo(text)


def _control_command(operation: str, summary: str) -> click.Command:
    @target_options
    @click.argument("instance_id")
    @click.option("--reason", default=None, help="Recorded in the instance's history.")
    def command(as_json: bool, storage: str | None, url: str | None, key: str | None,
                instance_id: str, reason: str | None) -> None:
        async def work(target: Target) -> None:
            await target.control(instance_id, operation, reason)
            _done(as_json, {"instanceId": instance_id, "requested": operation},
                  f"{operation} requested for {instance_id}")

        run_with_target(storage, url, key, work)

    command.__doc__ = summary
    return click.command(operation)(command)


instances.add_command(_control_command("terminate", "Terminate a running instance."))
instances.add_command(_control_command("suspend", "Suspend a running instance."))
instances.add_command(_control_command("resume", "Resume a suspended instance."))


@instances.command()
@target_options
@click.argument("instance_id")
@click.option("--same-id", is_flag=True, help="Restart under the same ID (default: a new one).")
def restart(as_json: bool, storage: str | None, url: str | None, key: str | None,
            instance_id: str, same_id: bool) -> None:
    """Start the instance's orchestrator again with its original input."""

    async def work(target: Target) -> None:
        started = await target.restart(instance_id, new_id=not same_id)
        _done(as_json, {"id": started, "restartedFrom": instance_id}, started)

    run_with_target(storage, url, key, work)


@instances.command()
@target_options
@click.argument("instance_ids", nargs=-1)
@click.option("--from", "created_from", default=None, help="Purge by filter: created from.")
@click.option("--to", "created_to", default=None, help="Created to (default: now).")
@click.option("--status", "-s", "status", multiple=True,
              help="Only these finished statuses (default: every finished one).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def purge(as_json: bool, storage: str | None, url: str | None, key: str | None,
          instance_ids: tuple[str, ...], created_from: str | None, created_to: str | None,
          status: tuple[str, ...], yes: bool) -> None:
    """Delete instances and their history: the IDs given, or finished ones by filter."""
    if bool(instance_ids) == bool(created_from or created_to or status):
        raise click.UsageError("Give instance IDs, or a filter (--from/--to/--status), not both.")
    filters = ListFilter(_statuses(status), created_from=parse_when(created_from),
                         created_to=parse_when(created_to))
    what = (", ".join(instance_ids) if instance_ids
            else "every finished instance matching the filter")
    if not yes and not click.confirm(f"Purge {what}?", err=True):
        raise Fail("Nothing purged.", EXIT_ERROR)

    async def work(target: Target) -> None:
        deleted = 0
        if instance_ids:
            for instance_id in instance_ids:
                deleted += await target.purge(instance_id)
        else:
            deleted = await target.purge_by(filters)
        _done(as_json, {"instancesDeleted": deleted}, f"{deleted} instance(s) purged")

    run_with_target(storage, url, key, work)


@instances.command()
@target_options
@click.argument("instance_id")
@click.option("--reason", default=None, help="Recorded in the instance's history.")
def rewind(as_json: bool, storage: str | None, url: str | None, key: str | None,
           instance_id: str, reason: str | None) -> None:
    """Run a Failed instance again from where it failed (completed work is kept)."""

    async def work(target: Target) -> None:
        await target.rewind(instance_id, reason)
        _done(as_json, {"instanceId": instance_id, "requested": "rewind"},
              f"rewind requested for {instance_id}")

    run_with_target(storage, url, key, work)


@instances.command("export-history")
@target_options
@click.argument("instance_ids", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Folder for the files (<instance ID>.json each).")
def export_history(as_json: bool, storage: str | None, url: str | None, key: str | None,
                   instance_ids: tuple[str, ...], out_dir: str) -> None:
    """Write instances' histories as durable history files (for durable.testing.replay)."""
    from pathlib import Path
    from urllib.parse import quote

    async def work(target: Target) -> None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for instance_id in instance_ids:
            document = await target.export(instance_id)
            if document is None:
                raise InstanceNotFoundError(instance_id)
            file = folder / f"{quote(instance_id, safe='')}.json"
            file.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
            written.append(str(file))
        if as_json:
            render.print_json({"files": written})
        else:
            for name in written:
                click.echo(name)

    run_with_target(storage, url, key, work)
