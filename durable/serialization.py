"""JSON encoding of user values (inputs, outputs, event payloads, custom status).

Values travel as JSON text and are decoded once, where they are used: unlike the Azure Python
SDK, `durable` never double-encodes (see docs/differences.md). Objects of classes with static
``to_json``/``from_json`` methods are wrapped in the same envelope Azure Durable Functions uses
(``__class__``, ``__module__``, ``__data__``) so such code ports unchanged; decoding looks the class
up only in modules that are already imported, never importing on behalf of a payload.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from durable.errors import SerializationError

_ENVELOPE_KEYS = frozenset(("__class__", "__module__", "__data__"))


def _default(value: Any) -> Any:
    to_json = getattr(type(value), "to_json", None)
    if callable(to_json):
        kind = type(value)
        data = to_json(value)
        return {"__class__": kind.__name__, "__module__": kind.__module__, "__data__": data}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# allow_nan=False: NaN and Infinity are not JSON; other languages' clients could not read them.
_encoder = json.JSONEncoder(
    default=_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
)
_decoder = json.JSONDecoder()


def dumps(value: Any, what: str = "value") -> str:
    """Encode ``value`` as JSON text, or raise :class:`SerializationError` naming ``what``."""
    if value is None:
        return "null"
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"The {what} is not JSON-serializable: {exc}") from None


def _revive(obj: dict[str, Any]) -> Any:
    if obj.keys() != _ENVELOPE_KEYS:
        return obj
    module = sys.modules.get(obj["__module__"])
    kind = getattr(module, obj["__class__"], None) if module is not None else None
    from_json = getattr(kind, "from_json", None)
    if not callable(from_json):
        return obj
    return from_json(obj["__data__"])


_object_decoder = json.JSONDecoder(object_hook=_revive)


def loads(text: str | None) -> Any:
    """Decode JSON text produced by :func:`dumps`; ``None`` stays ``None``."""
    if text is None:
        return None
    if "__class__" in text:
        return _object_decoder.decode(text)
    return _decoder.decode(text)

