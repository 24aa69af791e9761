"""JSON encoding of user values (inputs, outputs, event payloads, custom status).

Values travel as JSON text and are decoded once, where they are used: unlike the Azure Python
SDK, `durable` never double-encodes (see docs/differences.md). Objects of classes with static
``to_json``/``from_json`` methods are wrapped in the same envelope Azure Durable Functions uses
(``__class__``, ``__module__``, ``__data__``) so such code ports unchanged; decoding looks the class
up only in modules that are already imported, never importing on behalf of a payload.

What can be stored is checked here, where every value enters (the client, the HTTP API, an
activity's result, an orchestrator's output and custom status), so that a value storage
cannot hold is refused with :class:`SerializationError` at its source instead of failing a
commit later, together with whatever else was in that commit (docs/reliability.md):

- Any JSON value is carried losslessly, including strings with NUL and other control
  characters (JSON escapes them).
- Strings with a *lone surrogate* (U+D800..U+DFFF not in a pair, what ``os.listdir`` and
  ``os.fsdecode`` return for a file name that is not UTF-8) are refused: UTF-8, and so SQLite
  and PostgreSQL text, cannot encode them.
- ``NaN`` and ``Infinity`` are refused: they are not JSON.

An envelope that is not one of ours (``__class__`` not a string, a class that does not exist or
has no ``from_json``) decodes as the plain dict it is.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from durable.errors import SerializationError, _printable

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


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# durable's own records (events, requests, scheduler state): compact, UTF-8 kept as is, built
# once for the process. ``json.dumps`` with any keyword argument builds a new JSONEncoder on
# every call, and JSONEncoder.encode a new C encoder: a measurable share of every commit.
# Where CPython's C encoder is there, it is called directly (same text; no circular-reference
# check: these records are trees durable builds).
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_compact_chunks: Any = (
    _c_make_encoder(None, _not_json, json.encoder.encode_basestring, None, ":", ",",
                    False, False, True)
    if _c_make_encoder is not None else None
)


def compact_json(value: Any) -> str:
    """``value`` as compact JSON text (durable's own records; user values go through dumps)."""
    if _compact_chunks is None:
        return _compact.encode(value)
    return "".join(_compact_chunks(value, 0))


def unencodable(text: str, of: str = "of its JSON text") -> str | None:
    """Why ``text`` cannot be stored as UTF-8 (a lone surrogate, and where), or None.

    Cheap for the common case: ``isascii`` is a single pass in C, and only non-ASCII text is
    encoded to find out.
    """
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        place = f"character {exc.start} {of}".rstrip()
        return (f"it contains the lone surrogate U+{char:04X} ({place}), "
                "which UTF-8 cannot encode; a file name from os.listdir or os.fsdecode that is "
                "not UTF-8 looks like this: pass os.fsencode(name) as base64, or decode it "
                "with errors='replace'")
    return None


def printable(text: str) -> str:
    """``text`` with lone surrogates spelled as ``\\udcff`` escapes: storable, and readable.

    For messages about values (error messages, tracebacks), where losing the exact code point
    is fine but refusing to record the failure is not.
    """
    return _printable(text)


def dumps(value: Any, what: str = "value") -> str:
    """Encode ``value`` as JSON text, or raise :class:`SerializationError` naming ``what``."""
    if value is None:
        return "null"
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"The {what} is not JSON-serializable: {printable(str(exc))}"
        ) from None
    problem = unencodable(text)
    if problem is not None:
        raise SerializationError(f"The {what} cannot be stored: {problem}.")
    return text


def _revive(obj: dict[str, Any]) -> Any:
    if obj.keys() != _ENVELOPE_KEYS:
        return obj
    module_name, class_name = obj["__module__"], obj["__class__"]
    if not isinstance(module_name, str) or not isinstance(class_name, str):
        return obj  # not an envelope we wrote: just a dict with these keys
    module = sys.modules.get(module_name)
    kind = getattr(module, class_name, None) if module is not None else None
    if not isinstance(kind, type):
        return obj
    from_json = getattr(kind, "from_json", None)
    if not callable(from_json):
        return obj
    try:
        return from_json(obj["__data__"])
    except Exception as exc:
        raise SerializationError(
            f"{module_name}.{class_name}.from_json could not rebuild the value: "
            f"{type(exc).__name__}: {printable(str(exc))}"
        ) from exc


_object_decoder = json.JSONDecoder(object_hook=_revive)


def loads(text: str | None) -> Any:
    """Decode JSON text produced by :func:`dumps`; ``None`` stays ``None``.

    Raises :class:`SerializationError` if the text is not JSON or a class's ``from_json``
    fails on it.
    """
    if text is None:
        return None
    try:
        if "__class__" in text:
            return _object_decoder.decode(text)
        return _decoder.decode(text)
    except SerializationError:
        raise
    except (ValueError, RecursionError) as exc:
        raise SerializationError(f"The stored value is not valid JSON: {exc}") from None


def loads_for_display(text: str | None) -> Any:
    """Like :func:`loads`, but never fails: for showing a stored value (status, history).

    A value whose class cannot rebuild it is shown as its JSON (the envelope dict); text that
    is not JSON at all is shown as the string it is. Listing instances must not break because
    one of them holds a value its orchestrator would refuse.
    """
    if text is None:
        return None
    try:
        return loads(text)
    except SerializationError:
        try:
            return _decoder.decode(text)
        except (ValueError, RecursionError):
            return text
