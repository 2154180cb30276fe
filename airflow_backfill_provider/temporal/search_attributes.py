"""Typed search attributes from a plain mapping, so operators and specs can pass JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow_backfill_provider.exceptions import ConfigurationError


def typed_search_attributes(values: Mapping[str, Any] | None) -> Any:
    """Typed search attributes from a plain mapping, the type inferred from each value.

    ``str`` → Keyword, ``bool`` → Bool, ``int`` → Int, ``float`` → Float, ``datetime`` →
    Datetime, list of ``str`` → KeywordList. Attributes other than the built-in ones must be
    registered on the namespace first.
    """
    if not values:
        return None
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

    pairs = []
    for name, value in values.items():
        if isinstance(value, bool):
            key = SearchAttributeKey.for_bool(name)
        elif isinstance(value, int):
            key = SearchAttributeKey.for_int(name)
        elif isinstance(value, float):
            key = SearchAttributeKey.for_float(name)
        elif isinstance(value, datetime):
            key = SearchAttributeKey.for_datetime(name)
        elif isinstance(value, str):
            key = SearchAttributeKey.for_keyword(name)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            key, value = SearchAttributeKey.for_keyword_list(name), list(value)
        else:
            raise ConfigurationError(
                f"Search attribute {name!r} has a value of type {type(value).__name__}; use str, int, "
                "float, bool, datetime or a list of str."
            )
        pairs.append(SearchAttributePair(key, value))
    return TypedSearchAttributes(pairs)
