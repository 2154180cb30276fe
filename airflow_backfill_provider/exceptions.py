"""The package's exception hierarchy (no Airflow import, so pure modules can raise them)."""

from __future__ import annotations

import re
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


class EmptyReadError(ReconciliationError):
    """The source gave no row for a window the target holds rows for: nothing was replaced."""


# Airflow's words for a connection id it cannot find (airflow.sdk's AirflowNotFoundException).
_MISSING_CONNECTION = re.compile(r"conn_id `([^`]+)` isn't defined")


def missing_connection(err: BaseException) -> str | None:
    """What to do about an Airflow connection that is not defined, or ``None`` for another error."""
    match = _MISSING_CONNECTION.search(str(err)) if type(err).__name__ == "AirflowNotFoundException" else None
    if match is None:
        return None
    conn_id = match.group(1)
    return (
        f"The Airflow connection {conn_id!r} is not defined. Add it: Admin > Connections in the UI, "
        f"`airflow connections add {conn_id} ...`, or the environment variable "
        f"AIRFLOW_CONN_{conn_id.upper()} (docs/connections.md has an example of each type). "
        "Retrying cannot help."
    )


@contextmanager
def fail_without_retry() -> Iterator[None]:
    """Turn a :class:`ConfigurationError`, or a connection Airflow cannot find, raised inside the
    block into a task failure with no retry.

    The one place where bad input becomes Airflow's ``AirflowFailException``: retrying cannot fix a
    wrong Param, connection field or setting, or a connection that is missing, so the task fails at
    once, saying what to fix.
    """
    try:
        yield
    except ConfigurationError as err:
        _refuse(str(err), err)
    except Exception as err:
        message = missing_connection(err)
        if message is None:
            raise
        _refuse(message, err)


def _refuse(message: str, err: BaseException) -> None:
    """Fail the task without retry, and say why on the run's page too (within a task)."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_backfill_provider.tasks.runs import note_failure

    note_failure(message)
    raise AirflowFailException(message) from err
