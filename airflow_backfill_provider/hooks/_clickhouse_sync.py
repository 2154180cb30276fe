"""The minute-level sync's ClickHouse side: its state table, the exact append and the backfill's fence.

Used through a :class:`~airflow_backfill_provider.hooks.clickhouse.ClickHouseBackfillHook`:
:class:`ClickHouseSyncTarget` is what :func:`~airflow_backfill_provider.historian.sync_transfer.sync_once`
writes to, and :func:`read_fence` is what a backfill chunk asks before it reads the source.

The append never deletes and never scans the history table: the spooled window goes into a stage
(as a backfill chunk's does), and only the staged rows whose ``(TagName, DateTime)`` the window does
not hold yet are inserted. The subquery reads the window's rows only (the table is ordered by
``(TagName, DateTime)``), so a run's cost follows the window, not the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.exceptions import ReconciliationError
from airflow_backfill_provider.historian.schema import DEFAULT_TABLE, HISTORY_COLUMN_NAMES
from airflow_backfill_provider.historian.sync import TagState, state_table_name, sync_state_ddl
from airflow_backfill_provider.hooks._clickhouse_stage import ClickHouseStage
from airflow_backfill_provider.utils import quote_identifier, to_utc

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

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
_WINDOW = (
    "TagName IN {tags:Array(String)} "
    "AND DateTime >= {start:DateTime64(6, 'UTC')} AND DateTime < {end:DateTime64(6, 'UTC')}"
)
# Tags named in a reconciliation error: enough to act on, short enough to read.
_MISMATCH_TAGS_SHOWN = 20


def _table_exists(client: Client, table: str) -> bool:
    db, _, name = table.rpartition(".")
    return bool(
        client.command(
            "SELECT count() FROM system.tables WHERE database = "
            + ("{db:String}" if db else "currentDatabase()")
            + " AND name = {name:String}",
            parameters={"db": db, "name": name},
        )
    )


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


def latest_states(client: Client, state_table: str, tags: Sequence[str]) -> dict[str, TagState]:
    """The newest state row of each of ``tags`` that has one (exact before merges too)."""
    if not tags or not _table_exists(client, state_table):
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

    The commit inserts only the staged rows whose ``(TagName, DateTime)`` the window lacks, then
    checks that the window holds as many rows as the source gave. Nothing is deleted, so a row a
    backfill or an earlier run wrote is never touched.
    """

    def __init__(self, target: ClickHouseSyncTarget, table: str, key: str) -> None:
        super().__init__(target.hook, table, "sync\x1f" + key)
        self.target = target

    def commit(
        self, *, tags: Sequence[str], start: datetime, end: datetime, expected_rows: int
    ) -> dict[str, Any]:
        hook, table = self.hook, self.table
        qtable, qstage = quote_identifier(table), quote_identifier(self.name)
        params = {"tags": list(tags), "start": start, "end": end}
        client = self._loading_client()
        staged = int(client.command(f"SELECT count() FROM {qstage}"))
        if staged != expected_rows:
            raise ReconciliationError(
                f"{self.name}: {staged} rows staged, but the source gave {expected_rows}. Re-run the task."
            )
        before = hook.count_window(client, table, tags, start, end)
        cols = ", ".join(f"`{c}`" for c in HISTORY_COLUMN_NAMES)
        client.command(
            f"INSERT INTO {qtable} ({cols}) SELECT {cols} FROM {qstage} "
            f"WHERE (TagName, DateTime) NOT IN (SELECT TagName, DateTime FROM {qtable} WHERE {_WINDOW})",
            parameters=params,
            settings=self.target.append_settings or None,
        )
        after = hook.count_window(client, table, tags, start, end)
        last_seen = {
            str(tag): to_utc(newest)
            for tag, newest in client.query(
                f"SELECT TagName, max(DateTime) FROM {qstage} GROUP BY TagName"
            ).result_rows
        }
        mismatched: dict[str, tuple[int, int]] = {}
        if after != staged:
            mismatched = self._mismatched_tags(client, params)
        client.command(f"DROP TABLE IF EXISTS {qstage} SYNC")
        hook._release_memory(client)
        self._committed = True
        result = {
            "replaced_rows": 0,
            "written_rows": after,
            "inserted_rows": after - before,
            "source_rows": staged,
            "last_seen": last_seen,
            "mismatched": mismatched,
        }
        self.target.last_commit = result
        return result

    def _mismatched_tags(self, client: Client, params: dict) -> dict[str, tuple[int, int]]:
        """``{tag: (rows in the window, source rows)}`` for the tags whose counts differ."""
        by_tag = "SELECT TagName, count() FROM {table} WHERE " + _WINDOW + " GROUP BY TagName"
        held = dict(
            client.query(by_tag.format(table=quote_identifier(self.table)), parameters=params).result_rows
        )
        source = dict(
            client.query(by_tag.format(table=quote_identifier(self.name)), parameters=params).result_rows
        )
        return {
            str(t): (int(held.get(t, 0)), int(source.get(t, 0)))
            for t in sorted(set(held) | set(source))
            if held.get(t, 0) != source.get(t, 0)
        }


class ClickHouseSyncTarget:
    """The history table and its sync state in one ClickHouse (server or embedded).

    A :class:`~airflow_backfill_provider.historian.transfer.StagingTarget` whose stages append
    exactly, plus the state reads and writes of
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
        self.append_settings = dict(append_settings or {})
        #: The result of the last committed stage (inserted rows, newest row per tag, mismatches).
        self.last_commit: dict[str, Any] | None = None

    def stage(self, table: str, key: str) -> AppendStage:
        return AppendStage(self, table, key)

    def read_state(self, tags: Sequence[str]) -> dict[str, TagState]:
        with self.hook.session() as client:
            return latest_states(client, self.state_table, tags)

    def write_state(self, rows: Sequence[TagState]) -> None:
        """Insert state rows (creating the state table on first use); the newest version wins."""
        if not rows:
            return
        now = datetime.now(timezone.utc)
        data = [
            [r.tag, r.claim_start, r.watermark, r.last_seen, r.status, r.version, r.run_id, now] for r in rows
        ]
        with self.hook.session() as client:
            client.command(sync_state_ddl(self.state_table))
            client.insert(self.state_table, data, column_names=list(_STATE_COLUMNS))
