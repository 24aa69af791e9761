"""How ``durable instances ...`` shows things: Rich tables and panels, or JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from durable.errors import FailureDetails
from durable.telemetry.tracebacks import user_frames

STATUS_STYLES = {
    "Running": "bold blue",
    "Pending": "dim",
    "Completed": "bold green",
    "Failed": "bold red",
    "Terminated": "bold yellow",
    "Suspended": "bold magenta",
    "ContinuedAsNew": "cyan",
    "Canceled": "dim",
}


def console() -> Console:
    """Rich output; piped (not a terminal) it is at least 160 columns, so IDs stay whole."""
    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal and out.width < 160:
        out = Console(highlight=False, soft_wrap=False, width=160)
    return out


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def status_text(status: str | None) -> Text:
    name = status or "unknown"
    return Text(name, style=STATUS_STYLES.get(name, ""))


def _time(value: str | None) -> str:
    return (value or "").replace("T", " ").rstrip("Z")


def _compact(value: Any, width: int = 40) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def instances_table(instances: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    table.add_column("Instance ID", no_wrap=True)
    table.add_column("Name", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Created (UTC)", no_wrap=True)
    table.add_column("Last updated (UTC)", overflow="ellipsis", no_wrap=True)
    table.add_column("Custom status", overflow="ellipsis", max_width=40)
    for item in instances:
        table.add_row(item.get("instanceId") or "", item.get("name") or "",
                      status_text(item.get("runtimeStatus")), _time(item.get("createdTime")),
                      _time(item.get("lastUpdatedTime")), _compact(item.get("customStatus")))
    return table


def show_instance(out: Console, item: dict[str, Any]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Instance", item.get("instanceId") or "")
    grid.add_row("Name", item.get("name") or "")
    grid.add_row("Status", status_text(item.get("runtimeStatus")))
    grid.add_row("Created", _time(item.get("createdTime")) + " UTC")
    grid.add_row("Last updated", _time(item.get("lastUpdatedTime")) + " UTC")
    grid.add_row("Input", _compact(item.get("input"), 200))
    grid.add_row("Output", _compact(item.get("output"), 200))
    grid.add_row("Custom status", _compact(item.get("customStatus"), 200))
    out.print(grid)
    failure = item.get("failureDetails")
    if failure:
        details = FailureDetails.from_json(failure)
        out.print(Text(f"\nFailure: {details.error_type}: {details.message}", style="bold red"))
        frames = user_frames(details.details)
        if frames:
            out.print(Text(frames.rstrip()))


def history_table(events: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("Event")
    table.add_column("Timestamp (UTC)")
    table.add_column("Name")
    table.add_column("Details", overflow="fold")
    for number, event in enumerate(events):
        rest = {k: v for k, v in event.items()
                if k not in ("EventType", "Timestamp", "FunctionName", "Name")}
        style = "red" if event.get("EventType") in ("TaskFailed",
                                                     "SubOrchestrationInstanceFailed") else ""
        table.add_row(str(number), Text(str(event.get("EventType")), style=style),
                      _time(event.get("Timestamp")),
                      str(event.get("FunctionName") or event.get("Name") or ""),
                      _compact(rest, 120) if rest else "")
    return table


def entities_table(entities: list[dict[str, Any]], with_state: bool) -> Table:
    table = Table(header_style="bold")
    table.add_column("Entity", no_wrap=True)
    table.add_column("Key", no_wrap=True)
    table.add_column("Last operation (UTC)", no_wrap=True)
    if with_state:
        table.add_column("State", overflow="ellipsis", max_width=60)
    for item in entities:
        entity = item.get("entityId") or {}
        row = [entity.get("name") or "", entity.get("key") or "",
               _time(item.get("lastOperationTime"))]
        if with_state:
            row.append(_compact(item.get("state"), 60))
        table.add_row(*row)
    return table
