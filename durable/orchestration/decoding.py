"""Decoding stored payloads inside the engine, with errors that say what could not be read."""

from __future__ import annotations

from typing import Any

from durable import serialization
from durable.errors import DeserializationError


def decode_payload(text: str | None, what: str) -> Any:
    """Decode a stored JSON payload; a value that cannot be decoded is a typed error naming it.

    The engine turns that error into a clear failure of the instance instead of letting an
    exception escape the episode (which the worker could only retry, forever).
    """
    try:
        return serialization.loads(text)
    except Exception as exc:
        raise DeserializationError(f"The {what} cannot be decoded: {exc}") from exc
