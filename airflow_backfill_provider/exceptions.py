"""The package's exception hierarchy (no Airflow import, so pure modules can raise them)."""

from __future__ import annotations


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
