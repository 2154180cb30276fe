"""Temporal visibility queries: which values a query can hold, and the queries for a spec's ids."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.utils import batched

if TYPE_CHECKING:
    from airflow_backfill_provider.workflows.spec import WorkflowSpec

# Workflow ids per visibility query: short enough for every visibility store's query limits.
QUERY_BATCH_IDS = 200
_QUERY_UNSAFE = re.compile(r"['\"\\\n\r]")


def check_query_safe(value: str, what: str, where: str = "") -> str:
    """Return ``value`` if a visibility query can hold it between single quotes, else raise."""
    # Visibility queries have no portable escaping; ids with quotes or backslashes are refused.
    if _QUERY_UNSAFE.search(value):
        raise ConfigurationError(
            f"{where + ': ' if where else ''}{what} {value!r} contains a quote, backslash or newline, "
            "which cannot be used in a Temporal visibility query."
        )
    return value


def quote_query_value(value: str) -> str:
    """Single-quote a value for a visibility query (refusing values that would need escaping)."""
    return f"'{check_query_safe(value, 'value')}'"


def visibility_queries(spec: WorkflowSpec, expected_ids: Sequence[str]) -> list[str]:
    """Visibility queries that together list every execution that can belong to ``expected_ids``.

    Exact matching lists the expected ids and all their possible replacement ids with ``IN``;
    prefix matching needs one ``STARTS_WITH`` per key. Batched to keep each query short.
    """
    base = f"WorkflowType = {quote_query_value(spec.workflow_type)}"
    if spec.extra_query:
        base += f" AND ({spec.extra_query})"
    if spec.match == "exact":
        ids = [i for wid in expected_ids for i in spec.candidate_ids(wid)]
        return [
            f"{base} AND WorkflowId IN ({', '.join(quote_query_value(i) for i in batch)})"
            for batch in batched(ids, QUERY_BATCH_IDS)
        ]
    queries = []
    for batch in batched(list(expected_ids), QUERY_BATCH_IDS // 4):
        clauses = " OR ".join(f"WorkflowId STARTS_WITH {quote_query_value(i)}" for i in batch)
        queries.append(f"{base} AND ({clauses})")
    return queries
