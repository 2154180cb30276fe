"""Retry with exponential backoff behind a circuit breaker. Pure Python, no Airflow import.

The breaker protects a source (SQL Server) from a retry storm: after ``failure_threshold``
consecutive failed calls it opens and refuses calls for ``reset_timeout`` seconds, then lets one
trial call through (half-open). It lives in one task process; Airflow's own task retries (with
``retry_exponential_backoff``) are the outer loop across processes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from airflow_backfill_provider.exceptions import CircuitOpenError, SourceUnavailableError

T = TypeVar("T")
log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold!r}.")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_timeout:
            return "half-open"
        return "open"

    def before_call(self) -> None:
        if self.state == "open":
            remaining = self.reset_timeout - (self._clock() - (self._opened_at or 0.0))
            raise CircuitOpenError(
                f"Circuit breaker is open after {self._failures} consecutive source failures; "
                f"calls are refused for another {remaining:.0f}s. Check the source's availability."
            )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._failures >= self.failure_threshold or self._opened_at is not None:
            self._opened_at = self._clock()


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` calls in all; the delay before retry n is ``base_delay * 2**(n-1)``, capped, jittered."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.1

    def delay(self, retry_number: int) -> float:
        d = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return d * (1 + random.uniform(-self.jitter, self.jitter))


def call_with_retry(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    policy: RetryPolicy = RetryPolicy(),
    breaker: CircuitBreaker | None = None,
    what: str = "source call",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; retry transient errors with backoff; raise :class:`SourceUnavailableError` at the end.

    Non-transient errors (bad SQL, a missing table, bad input) propagate at once, unchanged.
    """
    last: BaseException | None = None
    for attempt in range(1, policy.attempts + 1):
        if breaker is not None:
            breaker.before_call()
        try:
            result = fn()
        except Exception as err:
            if not is_transient(err):
                raise
            last = err
            if breaker is not None:
                breaker.record_failure()
            if attempt == policy.attempts:
                break
            delay = policy.delay(attempt)
            log.warning(
                "%s failed (attempt %d/%d: %s); retrying in %.1fs",
                what,
                attempt,
                policy.attempts,
                _short(err),
                delay,
            )
            sleep(delay)
        else:
            if breaker is not None:
                breaker.record_success()
            return result
    raise SourceUnavailableError(
        f"{what} failed {policy.attempts} times; last error: {_short(last)}. "
        "Check that the source is reachable; the task can be retried safely."
    ) from last


def _short(err: BaseException | None, limit: int = 300) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
