from __future__ import annotations

import pytest

from airflow_backfill_provider.exceptions import CircuitOpenError, SourceUnavailableError
from airflow_backfill_provider.resilience import CircuitBreaker, RetryPolicy, call_with_retry


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def transient(err):
    return isinstance(err, ConnectionError)


def test_retries_transient_errors_with_exponential_backoff():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    policy = RetryPolicy(attempts=4, base_delay=1.0, jitter=0.0)
    assert call_with_retry(flaky, is_transient=transient, policy=policy, sleep=sleeps.append) == "ok"
    assert sleeps == [1.0, 2.0]


def test_gives_up_with_clear_error_after_attempts():
    sleeps = []

    def down():
        raise ConnectionError("connection refused")

    with pytest.raises(SourceUnavailableError, match="failed 3 times; last error: ConnectionError"):
        call_with_retry(
            down,
            is_transient=transient,
            policy=RetryPolicy(attempts=3, jitter=0),
            sleep=sleeps.append,
            what="Read",
        )
    assert len(sleeps) == 2


def test_permanent_errors_are_not_retried():
    calls = []

    def bad():
        calls.append(1)
        raise KeyError("no such column")

    with pytest.raises(KeyError):
        call_with_retry(bad, is_transient=transient, sleep=lambda s: None)
    assert len(calls) == 1


def test_breaker_opens_refuses_then_half_opens():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=60, clock=clock)

    def down():
        raise ConnectionError("x")

    with pytest.raises(SourceUnavailableError):
        call_with_retry(
            down,
            is_transient=transient,
            breaker=breaker,
            policy=RetryPolicy(attempts=2, jitter=0),
            sleep=lambda s: None,
        )
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError, match="refused for another 60s"):
        call_with_retry(lambda: "ok", is_transient=transient, breaker=breaker, sleep=lambda s: None)
    clock.now = 61
    assert breaker.state == "half-open"
    assert (
        call_with_retry(lambda: "ok", is_transient=transient, breaker=breaker, sleep=lambda s: None) == "ok"
    )
    assert breaker.state == "closed"


def test_half_open_failure_reopens_at_once():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now = 11
    assert breaker.state == "half-open"
    breaker.record_failure()
    assert breaker.state == "open"
