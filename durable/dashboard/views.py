"""HTML of the dashboard's pages: plain functions from data to escaped markup."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from durable.dashboard.timeline import Timeline
from durable.errors import FailureDetails
from durable.status import DurableOrchestrationStatus, OrchestrationRuntimeStatus
from durable.telemetry.tracebacks import user_frames

STATUSES = [s.value for s in OrchestrationRuntimeStatus]


def _time(moment: datetime | float | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _json(value: Any) -> str:
    return escape(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def badge(status: str | None) -> str:
    name = escape(status or "unknown")
    return f'<span class="badge {name}">{name}</span>'


def page(base: str, title: str, body: str, hub: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · durable</title>
<link rel="stylesheet" href="{base}/static/dashboard.css">
</head><body data-base="{escape(base)}">
<header class="top"><a href="{base}/">durable</a><span class="hub">{escape(hub)}</span>
<label><input type="checkbox" id="auto-refresh"> auto-refresh (5 s)</label></header>
<main>{body}</main>
<script src="{base}/static/dashboard.js"></script>
</body></html>"""


def instance_link(base: str, instance_id: str) -> str:
    return f"{base}/instances/{quote(instance_id, safe='')}"


def list_page(
    base: str,
    *,
    counts: Mapping[str, int],
    statuses: Sequence[DurableOrchestrationStatus],
    filters: Mapping[str, str],
    next_token: str | None,
    names: Sequence[str],
) -> str:
    chosen = filters.get("status", "")
    total = sum(counts.values())
    cards = [_count_card(base, "All", total, chosen == "", {})]
    for status in STATUSES:
        if counts.get(status):
            cards.append(_count_card(base, status, counts[status], chosen == status,
                                     {"status": status}))
    rows = "".join(_instance_row(base, s) for s in statuses)
    if not rows:
        rows = '<tr><td colspan="6" class="empty">No instances match.</td></tr>'
    newest = filters.get("sort", "newest") != "oldest"
    flip = dict(filters, sort="oldest" if newest else "newest")
    flip.pop("after", None)
    arrow = "↓" if newest else "↑"
    pager = [f'<a href="{base}/?{_query(filters, after=None)}">First page</a>']
    if next_token:
        pager.append(f'<a id="next-page" href="{base}/?{_query(filters, after=next_token)}">'
                     "Next page →</a>")
    pager.append(f"<span>{len(statuses)} shown</span>")
    body = f"""
<h1>Orchestration instances</h1>
<div class="counts">{''.join(cards)}</div>
{_filter_form(base, filters, names)}
<table id="instances">
<thead><tr><th>Instance ID</th><th>Name</th><th>Status</th>
<th><a href="{base}/?{_query(flip)}">Created {arrow}</a></th><th>Last updated</th>
<th>Custom status</th></tr></thead>
<tbody>{rows}</tbody></table>
<div class="pager">{' · '.join(pager)}</div>"""
    return body


def _count_card(base: str, label: str, n: int, active: bool, query: dict[str, str]) -> str:
    css = "count active" if active else "count"
    return (f'<a class="{css}" data-status="{escape(label)}" href="{base}/?{urlencode(query)}">'
            f"<b>{n:,}</b>{escape(label)}</a>")


def _query(filters: Mapping[str, str], **changes: str | None) -> str:
    merged = {k: v for k, v in filters.items() if v}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return urlencode(merged)


def _filter_form(base: str, filters: Mapping[str, str], names: Sequence[str]) -> str:
    def field(name: str) -> str:
        return escape(filters.get(name, ""), quote=True)

    options = ['<option value="">any</option>'] + [
        f'<option value="{s}"{" selected" if filters.get("status") == s else ""}>{s}</option>'
        for s in STATUSES
    ]
    datalist = "".join(f'<option value="{escape(n, quote=True)}">' for n in names)
    sort = filters.get("sort", "newest")
    return f"""<form class="filters" method="get" action="{base}/">
<label>Status<select name="status" id="filter-status">{''.join(options)}</select></label>
<label>Name<input name="name" id="filter-name" list="names" value="{field('name')}"
  placeholder="orchestrator"></label><datalist id="names">{datalist}</datalist>
<label>ID prefix<input name="prefix" id="filter-prefix" value="{field('prefix')}"></label>
<label>Created from (UTC)<input name="from" type="datetime-local" step="1"
  value="{field('from')}"></label>
<label>Created to (UTC)<input name="to" type="datetime-local" step="1"
  value="{field('to')}"></label>
<label>Order<select name="sort">
<option value="newest"{' selected' if sort != 'oldest' else ''}>newest first</option>
<option value="oldest"{' selected' if sort == 'oldest' else ''}>oldest first</option></select>
</label>
<button class="primary" type="submit" id="apply-filters">Filter</button>
<a href="{base}/">clear</a></form>"""


def _instance_row(base: str, status: DurableOrchestrationStatus) -> str:
    runtime = status.runtime_status.value if status.runtime_status else None
    custom = status.custom_status
    custom_text = "" if custom is None else json.dumps(custom, ensure_ascii=False)[:80]
    instance_id = status.instance_id or ""
    return (f'<tr><td class="mono"><a href="{instance_link(base, instance_id)}">'
            f"{escape(instance_id)}</a></td><td>{escape(status.name or '')}</td>"
            f"<td>{badge(runtime)}</td><td>{_time(status.created_time)}</td>"
            f"<td>{_time(status.last_updated_time)}</td>"
            f'<td class="mono">{escape(custom_text)}</td></tr>')


def instance_page(
    base: str,
    status: DurableOrchestrationStatus,
    *,
    timeline: Timeline,
    history: list[dict[str, Any]],
    execution_id: str,
    parent_instance_id: str | None,
) -> str:
    runtime = status.runtime_status.value if status.runtime_status else None
    instance_id = status.instance_id or ""
    parent = ""
    if parent_instance_id:
        parent = (f'<dt>Parent</dt><dd class="mono"><a href="'
                  f'{instance_link(base, parent_instance_id)}">{escape(parent_instance_id)}'
                  "</a></dd>")
    failure = ""
    if status.failure_details:
        failure = failure_block(FailureDetails.from_json(status.failure_details))
    body = f"""
<p><a href="{base}/">← all instances</a></p>
<h1><span class="mono" id="instance-id">{escape(instance_id)}</span>
 <span id="instance-status">{badge(runtime)}</span></h1>
<dl class="grid">
<dt>Name</dt><dd>{escape(status.name or '')}</dd>
<dt>Execution</dt><dd class="mono">{escape(execution_id)}</dd>
<dt>Created</dt><dd>{_time(status.created_time)} UTC</dd>
<dt>Last updated</dt><dd>{_time(status.last_updated_time)} UTC</dd>{parent}
</dl>
<div id="message"></div>
<h2>Actions</h2>
{_actions(instance_id, runtime)}
{failure}
<h2>Input</h2><pre id="input">{_json(status.input_)}</pre>
<h2>Output</h2><pre id="output">{_json(status.output)}</pre>
<h2>Custom status</h2><pre id="custom-status">{_json(status.custom_status)}</pre>
<h2>Timeline</h2>
{timeline_block(base, timeline)}
<h2>History events ({len(history)})</h2>
{_history_table(history)}"""
    return body


def failure_block(failure: FailureDetails) -> str:
    frames = user_frames(failure.details)
    trace = f"<pre>{escape(frames)}</pre>" if frames else ""
    return (f'<h2>Failure</h2><div id="failure"><p><b>{escape(failure.error_type)}</b>: '
            f"{escape(failure.message)}</p>{trace}</div>")


def _actions(instance_id: str, runtime: str | None) -> str:
    running = runtime in ("Running", "Pending", "Suspended", "ContinuedAsNew")
    attrs = f'data-instance="{escape(instance_id, quote=True)}"'
    parts: list[str] = []
    if running:
        parts.append(f"""<label>Event name<input id="event-name" placeholder="Approval"></label>
<label>Event data (JSON)<input id="event-data" placeholder='{{"ok": true}}'></label>
<button class="primary" id="raise-event" data-action="raise" {attrs}>Raise event</button>
<label>Reason<input id="reason" placeholder="optional"></label>""")
        if runtime == "Suspended":
            parts.append(f'<button id="resume" data-action="resume" {attrs}>Resume</button>')
        else:
            parts.append(f'<button id="suspend" data-action="suspend" {attrs}>Suspend</button>')
        parts.append(f'<button class="danger" id="terminate" data-action="terminate" {attrs}>'
                     "Terminate</button>")
    parts.append(f'<button id="restart" data-action="restart" {attrs}>Restart</button>')
    if not running:
        parts.append(f'<button class="danger" id="purge" data-action="purge" {attrs}>'
                     "Purge</button>")
    return f'<div class="actions">{"".join(parts)}</div>'


def timeline_block(base: str, timeline: Timeline) -> str:
    if not timeline.rows:
        return '<div class="gantt empty">No history yet.</div>'
    rows = []
    for row in timeline.rows:
        left, width = timeline.position(row)
        label = escape(row.label)
        if row.link:
            label = f'<a href="{instance_link(base, row.link)}">{label}</a>'
        took = ""
        if row.end is not None and not row.is_point:
            took = f" {max(0.0, row.end - row.start) * 1000:,.0f} ms"
        title = escape(f"{row.kind} {row.label} {row.detail}".strip(), quote=True)
        if row.is_point:
            mark = f'<span class="dot" style="left:{left:.3f}%" title="{title}"></span>'
        else:
            css = f"bar {row.outcome} {row.kind}"
            mark = (f'<span class="{css}" style="left:{left:.3f}%;width:{width:.3f}%" '
                    f'title="{title}"></span>')
        rows.append(f'<div class="row" data-kind="{row.kind}" data-outcome="{row.outcome}">'
                    f'<div class="label">{label} <small>{escape(row.kind)}{took}</small></div>'
                    f'<div class="track">{mark}</div></div>')
    axis = (f'<div class="axis"><span>{_time(timeline.start)}</span>'
            f"<span>{timeline.span:,.3f} s</span><span>{_time(timeline.end)}</span></div>")
    return f'<div class="gantt" id="timeline">{"".join(rows)}{axis}</div>'


def _history_table(history: list[dict[str, Any]]) -> str:
    rows = []
    for number, event in enumerate(history):
        rest = {k: v for k, v in event.items() if k not in ("EventType", "Timestamp")}
        rows.append(f'<tr><td>{number}</td><td>{escape(str(event.get("EventType")))}</td>'
                    f'<td class="mono">{escape(str(event.get("Timestamp")))}</td>'
                    f'<td><pre>{_json(rest)}</pre></td></tr>')
    return ('<table id="history"><thead><tr><th>#</th><th>Event</th><th>Timestamp</th>'
            f'<th>Details</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def login_page(base: str, failed: bool) -> str:
    note = '<p class="message error">That key is not valid.</p>' if failed else ""
    return f"""<h1>Key required</h1>
<div class="login"><p>This server listens beyond loopback: the dashboard needs the task hub's
<b>system</b> or <b>master</b> key (<code>durable keys</code> prints them).</p>{note}
<form method="get" action="{base}/"><label>Key <input name="code" type="password"
 id="key" autocomplete="off"></label> <button class="primary" type="submit">Open</button>
</form></div>"""


def not_found_page(base: str, instance_id: str) -> str:
    return (f'<p><a href="{base}/">← all instances</a></p><h1>Not found</h1>'
            f'<p>No instance has the ID <span class="mono">{escape(instance_id)}</span>.</p>')
