"""Retry policy for ``call_activity_with_retry`` and ``call_sub_orchestrator_with_retry``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RetryOptions:
    """How to retry a failed activity or sub-orchestration.

    The first two parameters are the Azure Python SDK's; the others complete the Durable Task
    Framework's policy (all times in milliseconds):

    - ``backoff_coefficient``: each delay is the previous one times this (default 1: fixed).
    - ``max_retry_interval_in_milliseconds``: cap on a single delay (default: no cap).
    - ``retry_timeout_in_milliseconds``: stop retrying once this long has passed since the first
      attempt started (default: no limit).
    - ``handle``: a predicate on the failure (a :class:`durable.TaskFailedError`); return False
      to stop retrying (default: retry every failure).
    """

    __slots__ = (
        "backoff_coefficient",
        "first_retry_interval_in_milliseconds",
        "handle",
        "max_number_of_attempts",
        "max_retry_interval_in_milliseconds",
        "retry_timeout_in_milliseconds",
    )

    def __init__(
        self,
        first_retry_interval_in_milliseconds: int,
        max_number_of_attempts: int,
        backoff_coefficient: float = 1.0,
        max_retry_interval_in_milliseconds: int | None = None,
        retry_timeout_in_milliseconds: int | None = None,
        handle: Callable[[Exception], bool] | None = None,
    ) -> None:
        if first_retry_interval_in_milliseconds <= 0:
            raise ValueError("first_retry_interval_in_milliseconds value must be greater than 0.")
        if max_number_of_attempts < 1:
            raise ValueError("max_number_of_attempts must be at least 1.")
        if backoff_coefficient < 1:
            raise ValueError("backoff_coefficient must be at least 1.")
        max_interval = max_retry_interval_in_milliseconds
        if max_interval is not None and max_interval <= 0:
            raise ValueError("max_retry_interval_in_milliseconds must be greater than 0.")
        self.first_retry_interval_in_milliseconds = first_retry_interval_in_milliseconds
        self.max_number_of_attempts = max_number_of_attempts
        self.backoff_coefficient = backoff_coefficient
        self.max_retry_interval_in_milliseconds = max_retry_interval_in_milliseconds
        self.retry_timeout_in_milliseconds = retry_timeout_in_milliseconds
        self.handle = handle

    def delay_before_retry(self, attempts_made: int, error: Any, elapsed: float) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to stop and fail.

        ``attempts_made`` counts attempts so far (1 after the first failure); ``elapsed`` is the
        replay-safe time in seconds since the first attempt started.
        """
        if attempts_made >= self.max_number_of_attempts:
            return None
        if self.handle is not None and not self.handle(error):
            return None
        if (
            self.retry_timeout_in_milliseconds is not None
            and elapsed * 1000 >= self.retry_timeout_in_milliseconds
        ):
            return None
        delay_ms = self.first_retry_interval_in_milliseconds * (
            self.backoff_coefficient ** (attempts_made - 1)
        )
        if self.max_retry_interval_in_milliseconds is not None:
            delay_ms = min(delay_ms, self.max_retry_interval_in_milliseconds)
        return delay_ms / 1000

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "firstRetryIntervalInMilliseconds": self.first_retry_interval_in_milliseconds,
            "maxNumberOfAttempts": self.max_number_of_attempts,
        }
        if self.backoff_coefficient != 1:
            out["backoffCoefficient"] = self.backoff_coefficient
        if self.max_retry_interval_in_milliseconds is not None:
            out["maxRetryIntervalInMilliseconds"] = self.max_retry_interval_in_milliseconds
        if self.retry_timeout_in_milliseconds is not None:
            out["retryTimeoutInMilliseconds"] = self.retry_timeout_in_milliseconds
        return out
