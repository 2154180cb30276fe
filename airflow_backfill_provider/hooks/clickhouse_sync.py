"""The minute-level sync's ClickHouse side: its state table, the exact append and the backfill's fence.

Used through a :class:`~airflow_backfill_provider.hooks.clickhouse.ClickHouseBackfillHook`:
:class:`ClickHouseSyncTarget` is what :func:`~airflow_backfill_provider.historian.sync_transfer.sync_once`
writes to, and :func:`read_fence` is what a backfill chunk asks before it reads the source. A run
takes one session for its claims and two per group (create the stage; load, append, record done),
since in embedded mode opening a session is most of a small run's cost.

The append never deletes and never scans the history table: the spooled window goes into a stage
(as a backfill chunk's does), and only the staged rows whose ``(TagName, DateTime)`` the window does
not hold yet are inserted. The subquery reads the window's rows only (the table is ordered by
``(TagName, DateTime)``), so a run's cost follows the window, not the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.historian.retroactive import KnownName, known_ddl, known_table_name
from airflow_backfill_provider.historian.schema import DEFAULT_TABLE
from airflow_backfill_provider.historian.sync import SyncPlan, TagState, state_table_name, sync_state_ddl
from airflow_backfill_provider.hooks._clickhouse_stage import ClickHouseStage
from airflow_backfill_provider.hooks.clickhouse import _WINDOW_WHERE, ClickHouseBackfillHook
from airflow_backfill_provider.utils import quote_identifier, to_utc

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


_STATE_COLUMNS = (
    "TagName",
    "claim_start",
    "watermark",
    "last_seen",
    "status",
    "version",
    "run_id",
    "updated_at",
)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


def latest_states(client: Client, state_table: str, tags: Sequence[str]) -> dict[str, TagState]:
    """The newest state row of each of ``tags`` that has one (exact before merges too)."""
    if not tags or not ClickHouseBackfillHook._table_exists(client, state_table):
        return {}
    rows = client.query(
        f"SELECT {', '.join(_STATE_COLUMNS[:-1])} FROM {quote_identifier(state_table)} "
        "WHERE TagName IN {tags:Array(String)} ORDER BY TagName, version DESC LIMIT 1 BY TagName",
        parameters={"tags": list(tags)},
    ).result_rows
    return {
        tag: TagState(tag, _utc(claim), _utc(watermark), _utc(seen), status, int(version), run_id)
        for tag, claim, watermark, seen, status, version, run_id in rows
    }


def read_fence(
    hook: ClickHouseBackfillHook, table: str, tags: Sequence[str], state_table: str | None = None
) -> datetime | None:
    """The lowest latest sync claim of ``tags`` in ``table``'s state table, or ``None`` (no state
    table, or none of the tags claimed): a backfill chunk must end at or before it."""
    state_table = state_table or state_table_name(table)
    with hook.session() as client:
        claims = {t: s.claim_start for t, s in latest_states(client, state_table, tags).items()}
    return min(claims.values()) if claims else None


class AppendStage(ClickHouseStage):
    """A sync group's stage: filled like a backfill chunk's, committed by an exact append.

    The commit inserts only the staged rows whose ``(TagName, DateTime)`` the window lacks, checks
    that the window then holds as many rows as the source gave, and records the state rows that
    ``on_commit`` returns for the result, in the same session. Nothing is deleted, so a row that a
    backfill or an earlier run wrote is never touched.
    """

    def __init__(
        self,
        target: ClickHouseSyncTarget,
        table: str,
        key: str,
        on_commit: Callable[[dict[str, Any]], Sequence[TagState]],
    ) -> None:
        super().__init__(target.hook, table, "sync\x1f" + key)
        self.target = target
        self.on_commit = on_commit

    def commit(
        self,
        *,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        expected_rows: int,
        allow_empty: bool = False,  # an append deletes nothing: an empty read empties no window
    ) -> dict[str, Any]:
        hook, table = self.hook, self.table
        qtable, qstage = quote_identifier(table), quote_identifier(self.name)
        params = {"tags": list(tags), "start": start, "end": end}
        client = self._loading_client()
        self._check_staged(client, expected_rows)
        before = hook.count_window(client, table, tags, start, end)
        # The stage's columns (it was created AS the table): the selected History columns hold the
        # source's values, any others their defaults, and a column added to the table since is left
        # to its default too.
        cols = ", ".join(f"`{c}`" for c in hook.table_columns(client, self.name))
        appending = time.monotonic()
        client.command(
            f"INSERT INTO {qtable} ({cols}) SELECT {cols} FROM {qstage} "
            f"WHERE (TagName, DateTime) NOT IN (SELECT TagName, DateTime FROM {qtable} WHERE {_WINDOW_WHERE})",
            parameters=params,
            settings=self.target.append_settings or None,
        )
        appended = time.monotonic() - appending
        after = hook.count_window(client, table, tags, start, end)
        last_seen = {
            str(tag): to_utc(newest)
            for tag, newest in client.query(
                f"SELECT TagName, max(DateTime) FROM {qstage} GROUP BY TagName"
            ).result_rows
        }
        result = {
            "replaced_rows": 0,
            "written_rows": after,
            "inserted_rows": after - before,
            "source_rows": expected_rows,
            "append_seconds": round(appended, 3),
            "last_seen": last_seen,
            "mismatched": self._mismatched_tags(client, params) if after != expected_rows else {},
        }
        self.target._insert_state(client, self.on_commit(result))
        client.command(f"DROP TABLE IF EXISTS {qstage} SYNC")
        hook._release_memory(client)
        self._committed = True
        return result

    def _mismatched_tags(self, client: Client, params: dict) -> dict[str, tuple[int, int]]:
        """``{tag: (rows in the window, source rows)}`` for the tags whose counts differ."""

        def by_tag(table: str) -> dict:
            query = f"SELECT TagName, count() FROM {quote_identifier(table)} WHERE {_WINDOW_WHERE} GROUP BY TagName"
            return dict(client.query(query, parameters=params).result_rows)

        held, source = by_tag(self.table), by_tag(self.name)
        return {
            str(t): (int(held.get(t, 0)), int(source.get(t, 0)))
            for t in sorted(set(held) | set(source))
            if held.get(t, 0) != source.get(t, 0)
        }


class ClickHouseSyncTarget:
    """The history table and its sync state in one ClickHouse (server or embedded): the
    :class:`~airflow_backfill_provider.historian.sync_transfer.SyncTarget` of
    :func:`~airflow_backfill_provider.historian.sync_transfer.sync_once`.

    :param hook: the ClickHouse hook (its sessions hold the embedded lock).
    :param table: the history table.
    :param state_table: the state table; default ``<table>_sync_state``.
    :param append_settings: ClickHouse settings of the append's INSERT, e.g. ``{"max_rows_to_read":
        ..., "read_overflow_mode": "throw"}`` as a guard that a run never scans the table.
    """

    def __init__(
        self,
        hook: ClickHouseBackfillHook,
        table: str = DEFAULT_TABLE,
        state_table: str | None = None,
        *,
        append_settings: dict[str, Any] | None = None,
    ) -> None:
        self.hook = hook
        self.table = table
        self.state_table = state_table or state_table_name(table)
        self.known_table = known_table_name(table)
        self.append_settings = dict(append_settings or {})

    def claim(
        self, tags: Sequence[str], plan: Callable[[dict[str, TagState]], tuple[SyncPlan, Sequence[TagState]]]
    ) -> SyncPlan:
        """Read the state of ``tags``, plan from it and record the plan's claims, in one session."""
        with self.hook.session() as client:
            planned, claims = plan(latest_states(client, self.state_table, tags))
            self._insert_state(client, claims)
        return planned

    def append_stage(
        self, table: str, key: str, on_commit: Callable[[dict[str, Any]], Sequence[TagState]]
    ) -> AppendStage:
        return AppendStage(self, table, key, on_commit)

    def read_state(self, tags: Sequence[str]) -> dict[str, TagState]:
        """The live state of ``tags`` (those the sync has claimed), e.g. for lag metrics."""
        with self.hook.session() as client:
            return latest_states(client, self.state_table, tags)

    def claimed_tags(self) -> list[str]:
        """Every tag the sync has claimed (its state table's tags), sorted."""
        with self.hook.session() as client:
            if not ClickHouseBackfillHook._table_exists(client, self.state_table):
                return []
            return [r[0] for r in client.query(
                f"SELECT DISTINCT TagName FROM {quote_identifier(self.state_table)} ORDER BY TagName"
            ).result_rows]  # fmt: skip

    def known(self, kind: str) -> dict[str, KnownName]:
        """The names of ``kind`` the sync has met (:mod:`~airflow_backfill_provider.historian.retroactive`)."""
        with self.hook.session() as client:
            if not ClickHouseBackfillHook._table_exists(client, self.known_table):
                return {}
            rows = client.query(
                f"SELECT name, status, request, version FROM {quote_identifier(self.known_table)} "
                "WHERE kind = {kind:String} ORDER BY name, version DESC LIMIT 1 BY name",
                parameters={"kind": kind},
            ).result_rows
        return {name: KnownName(status, request, int(version)) for name, status, request, version in rows}

    def record_known(self, kind: str, names: Sequence[str], status: str, request: str = "") -> None:
        """Record ``names`` of ``kind`` with ``status`` (a newer version than any before)."""
        if not names:
            return
        now = datetime.now(timezone.utc)
        version = time.time_ns()
        with self.hook.session() as client:
            client.command(known_ddl(self.known_table))
            client.insert(
                self.known_table,
                [[kind, name, status, request, version, now] for name in names],
                column_names=["kind", "name", "status", "request", "version", "updated_at"],
            )

    def _insert_state(self, client: Client, rows: Sequence[TagState]) -> None:
        """Insert state rows (creating the state table on first use); the newest version wins."""
        if not rows:
            return
        now = datetime.now(timezone.utc)
        data = [
            [r.tag, r.claim_start, r.watermark, r.last_seen, r.status, r.version, r.run_id, now] for r in rows
        ]
        client.command(sync_state_ddl(self.state_table))
        client.insert(self.state_table, data, column_names=list(_STATE_COLUMNS))
