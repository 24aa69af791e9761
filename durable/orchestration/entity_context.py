"""What an entity function sees: ``DurableEntityContext``, one per operation.

Names follow ``azure.durable_functions`` (``get_state``, ``set_state``, ``set_result``,
``destruct_on_exit``, ...). Durable Task's .NET semantics are kept where the Python SDK is
weaker: an operation that raises is rolled back (its state changes and the signals it sent are
discarded), ``is_newly_constructed`` is true while the entity did not exist before this
operation, and entities may signal other entities, now or at a later time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from durable import serialization
from durable.errors import InvalidInputError
from durable.history import to_timestamp
from durable.orchestration.decoding import decode_payload
from durable.orchestration.entity_ids import EntityId, as_entity_id

_UNSET: Any = object()


@dataclass(slots=True)
class OutgoingSignal:
    target: EntityId
    operation: str
    input: str | None
    visible_at: float | None


class DurableEntityContext:
    """The context of one entity operation."""

    def __init__(
        self,
        entity_id: EntityId,
        operation: str,
        input_text: str | None,
        state_text: str | None,
        exists: bool,
        now: float,
        state_value: Any = _UNSET,
    ) -> None:
        self._entity_id = entity_id
        self._operation = operation
        self._input = input_text
        self._state_text = state_text
        self._state = state_value  # decoded lazily
        self._existed = exists
        self._exists = exists
        self._touched = False  # get_state/set_state called: the value may have changed
        self._deleted = False
        self._result: Any = None
        self._result_set = False
        self._now = now
        self.signals: list[OutgoingSignal] = []

    # -- who and what -----------------------------------------------------------------------------

    @property
    def entity_name(self) -> str:
        return self._entity_id.name

    @property
    def entity_key(self) -> str:
        return self._entity_id.key

    @property
    def entity_id(self) -> EntityId:
        return self._entity_id

    @property
    def operation_name(self) -> str:
        return self._operation

    @property
    def is_newly_constructed(self) -> bool:
        """True if the entity had no state before this operation."""
        return not self._existed

    def get_input(self, expected_type: type | None = None) -> Any:
        """The operation's input, decoded (``None`` if none was given)."""
        value = decode_payload(self._input, f"input of operation '{self._operation}'")
        if expected_type is not None and isinstance(value, dict) and expected_type is not dict:
            return expected_type(**value)
        return value

    # -- state ------------------------------------------------------------------------------------

    def get_state(self, initializer: Callable[[], Any] | None = None,
                  expected_type: type | None = None) -> Any:
        """The entity's state; if it has none, or its state is ``None`` (as the Python SDK
        reads ``set_state(None)``), ``initializer()`` (not stored until set)."""
        self._touched = True
        if self._state is _UNSET:
            if not self._exists:
                return initializer() if initializer is not None else None
            self._state = decode_payload(self._state_text, f"state of entity {self._entity_id}")
        value = self._state
        if value is None and initializer is not None:
            return initializer()
        if expected_type is not None and isinstance(value, dict) and expected_type is not dict:
            return expected_type(**value)
        return value

    def set_state(self, state: Any) -> None:
        """Replace the state (checked, like every value, when the operation ends)."""
        self._state = state
        self._exists = True
        self._deleted = False
        self._touched = True

    def set_result(self, result: Any) -> None:
        """The value returned to the caller of this operation (``call_entity``)."""
        self._result = result
        self._result_set = True

    def destruct_on_exit(self) -> None:
        """Delete the entity's state when this operation ends."""
        self._deleted = True
        self._exists = False
        self._state = None
        self._touched = True

    def signal_entity(
        self,
        entity_id: EntityId | str,
        operation_name: str,
        operation_input: Any = None,
        scheduled_time: datetime | timedelta | None = None,
    ) -> None:
        """Send a one-way operation to another entity (or to this one), at once or at
        ``scheduled_time`` (a datetime, or a delay from now). Sent only if this operation
        succeeds."""
        target = as_entity_id(entity_id)
        if not isinstance(operation_name, str):  # "" is a name, as in Durable Functions
            raise InvalidInputError("The operation name must be a string.")
        payload = serialization.dumps(operation_input, f"input of operation '{operation_name}'")
        self.signals.append(OutgoingSignal(target, operation_name, payload,
                                           _due(scheduled_time, self._now)))

    # -- engine side ------------------------------------------------------------------------------

    def _finish(self, returned: Any) -> tuple[str | None, bool, str]:
        """(state text, exists, result text) once the operation returned; raises
        SerializationError for a value that cannot be stored."""
        state_text = self._state_text
        if self._deleted or not self._exists:
            state_text = None
        elif self._touched:
            state_text = serialization.dumps(self._state, f"state of entity {self._entity_id}")
        result = self._result if self._result_set else returned
        return state_text, self._exists, serialization.dumps(
            result, f"result of operation '{self._operation}'")


def _due(moment: datetime | timedelta | None, now: float) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, timedelta):
        return now + moment.total_seconds()
    if isinstance(moment, datetime):
        return to_timestamp(moment)
    raise InvalidInputError(
        f"scheduled_time must be a datetime or timedelta, not {type(moment).__name__}."
    )


class Entity:
    """``df.Entity.create(fn)``: the Azure v1 model's wrapper of an entity function.

    ``durable`` registers entity functions with ``@app.entity_trigger``; this wrapper exists so
    code written as ``main = df.Entity.create(fn)`` keeps working, and calls ``fn(context)``.
    """

    def __init__(self, fn: Callable[[DurableEntityContext], Any]) -> None:
        self.entity_function = fn
        self.__name__ = getattr(fn, "__name__", "entity")

    @classmethod
    def create(cls, fn: Callable[[DurableEntityContext], Any]) -> Entity:
        return cls(fn)

    def __call__(self, context: DurableEntityContext) -> Any:
        return self.entity_function(context)
