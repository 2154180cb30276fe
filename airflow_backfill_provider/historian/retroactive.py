"""Retroactive backfill of new metadata: which tags and columns are new, and what to ask Airflow for.

Pure functions and records, no Airflow and no ClickHouse import. The sync keeps the names it has
met in ClickHouse (``<table>_sync_known``: one row per kind and name, the newest ``version`` wins):

- ``known``: met, nothing to load (the first sync's tags, whose history is ``wonderware_backfill``'s
  job, and new names while the retroactive backfill is off);
- ``pending``: new, a backfill is due, under the request id recorded with it;
- ``scheduled``: Airflow accepted the request (a run or a backfill of ``wonderware_backfill``).

A name is recorded ``pending`` before Airflow is asked, and ``scheduled`` after: a run that dies in
between asks again with the same request id, and Airflow makes no second run of one id. A name that
is ``scheduled`` is never asked for again, so a second detection schedules nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from airflow_backfill_provider.utils import check_identifier, iso, quote_identifier

TAG, COLUMN = "tag", "column"
KNOWN, PENDING, SCHEDULED = "known", "pending", "scheduled"
KNOWN_TABLE_SUFFIX = "_sync_known"


@dataclass(frozen=True)
class KnownName:
    status: str
    request: str
    version: int


def known_table_name(table: str) -> str:
    """The table of met names beside the history ``table`` (same database)."""
    return check_identifier(f"{check_identifier(table)}{KNOWN_TABLE_SUFFIX}")


def known_ddl(known_table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the met names; readers take the newest ``version``."""
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(known_table)}\n(\n"
        "    `kind` LowCardinality(String),\n"
        "    `name` String,\n"
        "    `status` LowCardinality(String),\n"
        "    `request` String,\n"
        "    `version` UInt64,\n"
        "    `updated_at` DateTime64(6, 'UTC')\n"
        ")\nENGINE = ReplacingMergeTree(version)\nORDER BY (kind, name)"
    )


def new_names(current: Iterable[str], known: Mapping[str, KnownName]) -> list[str]:
    """The names of ``current`` that ``known`` has never met, sorted, exactly as spelled."""
    return sorted(set(current) - set(known))


def pending_requests(known: Mapping[str, KnownName]) -> dict[str, list[str]]:
    """``{request id: names}`` of the requests recorded but not yet accepted by Airflow."""
    out: dict[str, list[str]] = {}
    for name, state in sorted(known.items()):
        if state.status == PENDING:
            out.setdefault(state.request, []).append(name)
    return out


def request_id(kind: str, names: Sequence[str]) -> str:
    """A run id for the request of ``names``: the same names give the same id, whatever the order.

    Airflow's run ids allow letters, digits and ``_.~:+-``; the hash keeps any tag name out of it.
    """
    digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]
    return f"retroactive__{kind}s__{digest}"


def tag_run_conf(tags: Sequence[str], start: datetime, end: datetime) -> dict:
    """The ``wonderware_backfill`` conf that loads just ``tags`` over ``[start, end)``.

    ``tags`` is the exact-name Param (tag names may hold glob characters); ``end`` is where the
    sync's own claims begin, and each chunk also stops below the sync's fence.
    """
    return {"tags": sorted(tags), "range_start": iso(start), "range_end": iso(end), "dry_run": False}
