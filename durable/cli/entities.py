"""``durable entities list|show|signal|clean``: durable entities, on storage or through a server.

Same targets, ``--json`` and exit codes as ``durable instances`` (see
:mod:`durable.cli.instances`); an entity is named by its entity name and key.
"""

from __future__ import annotations

from typing import Any

import click

from durable.cli import render
from durable.cli.instances import (
    EXIT_NOT_FOUND,
    Fail,
    parse_json,
    parse_when,
    run_with_target,
    target_options,
)
from durable.cli.targets import Target


@click.group()
def entities() -> None:
    """See and signal durable entities (on storage, or through a server)."""


@entities.command("list")
@target_options
@click.option("--name", "-n", default=None, help="Entity name prefix (case-insensitive).")
@click.option("--from", "last_from", default=None,
              help="Last operation at or after: ISO 8601 or an age (30m, 2h, 7d).")
@click.option("--to", "last_to", default=None, help="Last operation at or before.")
@click.option("--state/--no-state", default=True, show_default=True,
              help="Show each entity's state.")
@click.option("--top", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Entities per page.")
@click.option("--token", default=None, help="Continuation token of the next page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page.")
def list_command(as_json: bool, storage: str | None, url: str | None, key: str | None,
                 name: str | None, last_from: str | None, last_to: str | None, state: bool,
                 top: int, token: str | None, all_pages: bool) -> None:
    """List entities in ID order."""

    async def work(target: Target) -> None:
        found: list[dict[str, Any]] = []
        next_token = token
        while True:
            page, next_token = await target.list_entities(
                name, parse_when(last_from), parse_when(last_to), state, top, next_token)
            found.extend(page)
            if not all_pages or next_token is None:
                break
        if as_json:
            render.print_json({"entities": found, "continuationToken": next_token})
            return
        out = render.console()
        out.print(render.entities_table(found, state))
        tail = f"{len(found)} entit{'y' if len(found) == 1 else 'ies'}"
        if next_token:
            tail += f"; next page: --token {next_token}"
        out.print(tail, style="dim")

    run_with_target(storage, url, key, work)


@entities.command()
@target_options
@click.argument("name")
@click.argument("entity_key")
def show(as_json: bool, storage: str | None, url: str | None, key: str | None, name: str,
         entity_key: str) -> None:
    """The state of entity NAME / KEY (exit code 3 if it has none)."""

    async def work(target: Target) -> None:
        exists, state = await target.read_entity(name, entity_key)
        if not exists:
            raise Fail(f"The entity @{name.lower()}@{entity_key} has no state.", EXIT_NOT_FOUND)
        if as_json:
            render.print_json({"entityId": {"name": name.lower(), "key": entity_key},
                               "state": state})
        else:
            render.console().print_json(data=state)

    run_with_target(storage, url, key, work)


@entities.command()
@target_options
@click.argument("name")
@click.argument("entity_key")
@click.argument("operation")
@click.option("--input", "input_json", default=None, help="The operation's input as JSON.")
def signal(as_json: bool, storage: str | None, url: str | None, key: str | None, name: str,
           entity_key: str, operation: str, input_json: str | None) -> None:
    """Send OPERATION to entity NAME / KEY (one-way; it runs when a worker picks it up)."""
    data = parse_json(input_json, "--input")

    async def work(target: Target) -> None:
        await target.signal_entity(name, entity_key, operation, data)
        value = {"entityId": {"name": name.lower(), "key": entity_key}, "signaled": operation}
        if as_json:
            render.print_json(value)
        else:
            click.echo(f"signaled {operation!r} to @{name.lower()}@{entity_key}")

    run_with_target(storage, url, key, work)


@entities.command()
@target_options
@click.option("--keep-empty", is_flag=True, help="Do not remove entities without state.")
@click.option("--keep-locks", is_flag=True, help="Do not release orphaned locks.")
def clean(as_json: bool, storage: str | None, url: str | None, key: str | None,
          keep_empty: bool, keep_locks: bool) -> None:
    """Remove empty entities and release locks of orchestrations that no longer run."""

    async def work(target: Target) -> None:
        value = await target.clean_entities(not keep_empty, not keep_locks)
        if as_json:
            render.print_json(value)
        else:
            click.echo(f"{value['emptyEntitiesRemoved']} empty entities removed, "
                       f"{value['orphanedLocksReleased']} orphaned locks released")

    run_with_target(storage, url, key, work)
