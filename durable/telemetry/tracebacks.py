"""Tracebacks that show the user's frames, not durable's.

A failure's ``details`` is the formatted traceback of the exception. Between the user's frames
sit durable's own (the replay engine resuming the generator, the activity thread calling the
function), which say nothing to whoever debugs the orchestration. :func:`user_frames` removes
them from the text, so it works on stored details too (whichever version of durable wrote
them): the CLI, the dashboard and the console log all show the trimmed form.
"""

from __future__ import annotations

import re
from pathlib import Path

import durable

_PACKAGE_DIR = str(Path(durable.__file__).resolve().parent) + "/"
_FRAME = re.compile(r'^(\s*)File "([^"]+)", line \d+')


def is_internal(path: str) -> bool:
    """Whether ``path`` (a frame's file) belongs to durable itself."""
    try:
        resolved = str(Path(path).resolve())
    except (OSError, RuntimeError):
        resolved = path
    return resolved.startswith(_PACKAGE_DIR)


def user_frames(details: str | None) -> str | None:
    """``details`` without the frames of durable's own files (other text kept as it is)."""
    if not details:
        return details
    out: list[str] = []
    skipping_indent: int | None = None
    for line in details.splitlines():
        match = _FRAME.match(line)
        if match:
            indent = len(match.group(1))
            if is_internal(match.group(2)):
                skipping_indent = indent
                continue
            skipping_indent = None
            out.append(line)
            continue
        if skipping_indent is not None:
            # Source and caret lines of a skipped frame are indented deeper than its File line.
            if line.strip() and len(line) - len(line.lstrip()) > skipping_indent:
                continue
            skipping_indent = None
        out.append(line)
    return "\n".join(out) + ("\n" if details.endswith("\n") else "")


def last_line(details: str | None) -> str:
    """The exception line of a traceback (its last non-blank line), for one-line summaries."""
    if not details:
        return ""
    lines = [line for line in details.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
