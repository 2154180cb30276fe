"""One chunk's staging table in ClickHouse: the
:class:`~airflow_backfill_provider.historian.transfer.Stage` that ``ClickHouseBackfillHook.stage``
returns.

Spool files are inserted into a table beside the target while the source is still being read; the
target changes only at the commit, which deletes the window and moves the staged parts in (no data
copied). The stage owns its sessions: one is taken at the first file, kept across files (a session
per file costs memory that adds up over a large chunk in embedded mode) and handed back after
:data:`STAGE_SESSION_HOLD_SECONDS`, so in embedded mode, where a session holds the data directory's
lock, other tasks' writes wait at most that long.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.exceptions import ReconciliationError
from airflow_backfill_provider.utils import check_identifier, quote_identifier, system_table_filter

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

# How long a stage keeps one session across spool files before handing it back (and the embedded lock).
STAGE_SESSION_HOLD_SECONDS = 20.0
# A part size no chunk reaches: staged parts are always compact (see ClickHouseStage.__enter__).
_NEVER_WIDE = 2**62


def stage_name(table: str, key: str) -> str:
    """The staging table of one chunk: beside ``table``, deterministic, so a retry finds it."""
    db, _, name = check_identifier(table).rpartition(".")
    digest = hashlib.sha1(f"{table}\x1f{key}".encode()).hexdigest()[:16]
    return f"{db + '.' if db else ''}_abp_stage_{name}_{digest}"


class ClickHouseStage:
    """The staging table of one chunk of ``table``, used as a context manager by one thread.

    Entering creates it empty, shaped like ``table``; :meth:`add` inserts spool files into it;
    :meth:`commit` makes the window of ``table`` hold exactly the staged rows. Leaving the block
    without a commit, or with an error, drops it: the target is never touched before the commit.

    :param hook: the hook whose connection holds ``table``.
    :param table: the target table.
    :param key: what names the chunk (its window and tags); the same key gives the same stage.
    :param hold_seconds: how long one session is kept across files; also :attr:`idle_timeout`.
    """

    def __init__(
        self,
        hook: ClickHouseBackfillHook,
        table: str,
        key: str,
        *,
        hold_seconds: float = STAGE_SESSION_HOLD_SECONDS,
    ) -> None:
        self.hook = hook
        self.table = table
        self.name = stage_name(table, key)
        # Seconds without a new file after which the feeder calls idle(), so the session goes back.
        self.idle_timeout = hold_seconds
        self._held: ExitStack | None = None
        self._client: Client | None = None
        self._opened = 0.0
        self._committed = False

    def __enter__(self) -> ClickHouseStage:
        """Create the stage empty (dropping an earlier attempt's leftovers)."""
        qstage = quote_identifier(self.name)
        self._committed = False
        with self.hook.session() as client:
            self.hook.ensure_history_table(client, self.table)
            client.command(f"DROP TABLE IF EXISTS {qstage} SYNC")
            client.command(f"CREATE TABLE {qstage} AS {quote_identifier(self.table)}")
            # Compact parts (one data file per part, not two per column): creating a wide part's
            # files is most of a staged INSERT's filesystem work, and the parts move in as they are.
            client.command(
                f"ALTER TABLE {qstage} MODIFY SETTING "
                f"min_bytes_for_wide_part = {_NEVER_WIDE}, min_rows_for_wide_part = {_NEVER_WIDE}"
            )
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.idle()
        if self._committed:
            return
        try:
            with self.hook.session() as client:
                client.command(f"DROP TABLE IF EXISTS {quote_identifier(self.name)} SYNC")
        except Exception:
            if exc_type is None:
                raise
            # The original error matters more; the next attempt drops the stage anyway.
            self.hook.log.warning("Could not drop the staging table %s", self.name, exc_info=True)

    def add(self, spool_path: str) -> None:
        """Insert one spool file into the stage (the target is not touched)."""
        self.hook._insert_spool(self._loading_client(), self.name, spool_path)
        if time.monotonic() - self._opened > self.idle_timeout:
            self.idle()

    def idle(self) -> None:
        """Hand the held session back; the next :meth:`add` or :meth:`commit` takes a new one."""
        held, self._held, self._client = self._held, None, None
        if held is not None:
            held.close()

    def commit(
        self,
        *,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        expected_rows: int,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        """Make the table hold exactly the staged rows for ``tags`` × ``[start, end)``.

        Checks the stage holds ``expected_rows``, deletes whatever the window holds, moves the
        stage's parts into the table (``MOVE PARTITION ... TO TABLE``: no data copied, and unlike
        ``ATTACH PARTITION ... FROM`` nothing is left behind to delete), checks the window's count
        and drops the empty stage, in the session that loaded the files (embedded: no second engine
        start). Safe to repeat, like :meth:`ClickHouseBackfillHook.replace_window`, and like it refuses
        to empty a window that holds rows unless ``allow_empty``.
        """
        hook, table, stage = self.hook, self.table, self.name
        qtable, qstage = quote_identifier(table), quote_identifier(stage)
        client = self._loading_client()
        self._check_staged(client, expected_rows)
        existing = hook._clear_window(
            client, table, tags, start, end, expected_rows=expected_rows, allow_empty=allow_empty
        )
        where, params = system_table_filter(stage)
        partitions = client.query(
            f"SELECT DISTINCT partition_id FROM system.parts WHERE active AND {where}", parameters=params
        ).result_rows
        for (partition_id,) in partitions:
            if not str(partition_id).isalnum():  # toYYYYMM ids are digits; anything else is a bug
                raise ReconciliationError(f"Unexpected partition id {partition_id!r} in {stage}.")
            client.command(f"ALTER TABLE {qstage} MOVE PARTITION ID '{partition_id}' TO TABLE {qtable}")
        hook._release_memory(client)
        written = hook.count_window(client, table, tags, start, end)
        client.command(f"DROP TABLE IF EXISTS {qstage} SYNC")
        hook._release_memory(client)
        result = hook._verified(table, tags, start, end, existing, written, expected_rows)
        self._committed = True
        return result

    def _check_staged(self, client: Client, expected_rows: int) -> None:
        """Refuse to commit a stage that holds other than the rows the source gave."""
        staged = int(client.command(f"SELECT count() FROM {quote_identifier(self.name)}"))
        if staged != expected_rows:
            raise ReconciliationError(
                f"{self.name}: {staged} rows staged, but the source gave {expected_rows}. Re-run the task."
            )

    def _loading_client(self) -> Client:
        """The held session's client, taking a session (with the stage's merges stopped) if none is held."""
        if self._client is None:
            with ExitStack() as session:
                client = session.enter_context(self.hook.session())
                # Merging staged parts is wasted work: they move into the target as they are. The
                # stop does not outlive the embedded engine's session, hence once per session.
                try:
                    client.command(f"SYSTEM STOP MERGES {quote_identifier(self.name)}")
                except Exception as err:  # a user without the SYSTEM privilege: merges just run
                    self.hook.log.debug("Could not stop merges on %s: %s", self.name, err)
                self._held, self._client, self._opened = session.pop_all(), client, time.monotonic()
        return self._client
