"""The fast paths of durable's own encodings give exactly the text the plain ones give: stored
histories and request IDs written before them must read and replay the same."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from durable.orchestration.entity_calls import _REQUEST_NAMESPACE, uuid5_text
from durable.serialization import compact_json


def _value(rng: random.Random, depth: int = 0) -> object:
    kinds = ["int", "float", "str", "none", "bool"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-10**12, 10**12)
    if kind == "float":
        return rng.choice([rng.uniform(-1e6, 1e6), 1764694000.123456, 0.1, -0.0, 1e300])
    if kind == "str":
        return "".join(rng.choice('ab"\\\n\té€😀\x00/') for _ in range(rng.randint(0, 12)))
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{n}": _value(rng, depth + 1) for n in range(rng.randint(0, 4))}


def test_compact_json_is_json_dumps_compact() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = _value(rng)
        assert compact_json(value) == json.dumps(value, separators=(",", ":"),
                                                 ensure_ascii=False)


def test_compact_json_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json({"a": object()})


@pytest.mark.parametrize("name", ["", "a:1", "0f3c2b8e9d7a4c1e8b6a5d4c3b2a1f0e:17", "é:€:2"])
def test_request_ids_are_the_uuid5_of_execution_and_task(name: str) -> None:
    assert uuid5_text(name) == str(uuid.uuid5(_REQUEST_NAMESPACE, name))
