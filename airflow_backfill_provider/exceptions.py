"""The package's exception hierarchy (no Airflow import, so pure modules can raise them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class BackfillProviderError(Exception):
    """Base class of every error this provider raises on purpose."""


class ConfigurationError(BackfillProviderError, ValueError):
    """Bad input: wrong parameter, connection field or Param. Retrying will not help."""


class SourceUnavailableError(BackfillProviderError):
    """The source system could not be reached after the retries the hook allows."""


class CircuitOpenError(SourceUnavailableError):
    """The circuit breaker is open: too many consecutive source failures, calls are refused."""


class ReconciliationError(BackfillProviderError):
    """Rows written to the target do not match the rows read from the source."""


@contextmanager
def fail_without_retry() -> Iterator[None]:
    """Turn a :class:`ConfigurationError` raised inside the block into a task failure with no retry.

    The one place where bad input becomes Airflow's ``AirflowFailException``: retrying cannot fix a
    wrong Param, connection field or setting, so the task fails at once with the message as is.
    """
    try:
        yield
    except ConfigurationError as err:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(err)) from err
