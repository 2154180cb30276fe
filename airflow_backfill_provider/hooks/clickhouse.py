"""ClickHouse as a backfill target: a ClickHouse server over HTTP, or embedded ClickHouse (chdb).

Two connection types: ``clickhouse`` (the clickhousedb provider's, for a server) and ``chdb`` (this
provider's, for the embedded engine: its form asks only for the data directory, and its Test opens
that directory). The older way to embed, a ``clickhouse`` connection with the extra ``chdb_path``,
still works in the hooks; only its Test button runs the clickhousedb hook, which ignores the path.

chdb allows one process per data directory and releases it when the client is closed, so in
embedded mode every use is ``lock → open → use → close → unlock`` under an exclusive file lock
(``<chdb_path>.lock``). Several Airflow task processes can then share one embedded database; they
take turns on the ClickHouse side only, while reading the source runs in parallel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseConnection
from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook as _BaseClickHouseHook

from airflow_backfill_provider.exceptions import (
    BackfillProviderError,
    ConfigurationError,
    EmptyReadError,
    ReconciliationError,
)
from airflow_backfill_provider.historian.schema import (
    DEFAULT_TABLE,
    HISTORY_COLUMNS,
    Column,
    clickhouse_history_ddl,
    history_columns,
)
from airflow_backfill_provider.hooks import _clickhouse_columns as _columns
from airflow_backfill_provider.hooks._chdb import (
    CHDB_CONN_TYPE,
    DEFAULT_LOCK_TIMEOUT,
    ClickHouseEngineError,
    chdb_path_from_extra,
    directory_problem,
    engine_error,
    engine_errors,
    file_lock,
    os_cause,
)
from airflow_backfill_provider.hooks._clickhouse_insert import insert_spool
from airflow_backfill_provider.hooks._clickhouse_stage import ClickHouseStage
from airflow_backfill_provider.hooks._test_message import untransient
from airflow_backfill_provider.utils import quote_identifier, system_table_filter

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = [
    "CHDB_CONN_TYPE",
    "DEFAULT_LOCK_TIMEOUT",
    "ClickHouseBackfillHook",
    "ClickHouseEngineError",
    "EmbeddedClickHouseHook",
    "file_lock",
]

_WINDOW_WHERE = (
    "TagName IN {tags:Array(String)} "
    "AND DateTime >= {start:DateTime64(6, 'UTC')} AND DateTime < {end:DateTime64(6, 'UTC')}"
)


class _LockedConnection(ClickHouseConnection):
    """DB-API adapter that releases the embedded-database lock when closed."""

    def __init__(self, client: Client, release) -> None:
        super().__init__(client)
        self._release = release

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


class ClickHouseBackfillHook(_BaseClickHouseHook):
    """
    ClickHouse server or embedded chdb, with the operations a backfill needs.

    Everything of the clickhousedb provider's hook works (``run``, ``get_records``,
    ``SQLExecuteQueryOperator``). A connection of type ``chdb``, or a ``clickhouse`` one with the
    extra ``chdb_path``, selects embedded mode; all other fields then are ignored.

    :param clickhouse_conn_id: Airflow connection id of type ``chdb`` or ``clickhouse``.
    :param lock_timeout: embedded mode only: seconds to wait for the data directory's lock.
    """

    hook_name = "ClickHouse (server or embedded chdb)"

    def __init__(
        self,
        clickhouse_conn_id: str = _BaseClickHouseHook.default_conn_name,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(clickhouse_conn_id=clickhouse_conn_id, **kwargs)
        self.lock_timeout = lock_timeout
        self._tables_ensured: set[str] = set()

    @property
    def chdb_path(self) -> str | None:
        """The embedded data directory, or ``None`` for a ClickHouse server."""
        conn = self.connection
        path = chdb_path_from_extra(conn.extra_dejson)
        if not path and conn.conn_type == CHDB_CONN_TYPE:
            raise ConfigurationError(
                f"The embedded ClickHouse connection {self.get_conn_id()!r} has no data directory: set "
                "its 'Data directory' field (extra chdb_path), e.g. /var/lib/airflow/clickhouse."
            )
        return os.path.abspath(os.path.expanduser(path)) if path else None

    @property
    def where(self) -> str:
        """Connection id and server or data directory, as messages name them."""
        path = self.chdb_path
        if path:
            return f"embedded chdb at {path!r} (connection {self.get_conn_id()!r})"
        conn = self.connection
        return f"ClickHouse at {conn.host or 'localhost'}:{conn.port or 8123} (connection {self.get_conn_id()!r})"

    def _open_client(self) -> Client:
        import clickhouse_connect

        path = self.chdb_path
        if not path:
            try:
                return clickhouse_connect.get_client(**self._get_client_kwargs())
            except Exception as err:
                raise engine_error(err, self.where) from err
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            raise ConfigurationError(self._directory_message(path, os_cause(err))) from err
        try:
            return clickhouse_connect.get_client(dsn=f"chdb://{path}")
        except Exception as err:
            # The engine's own error ("Error initializing EmbeddedServer: . (BAD_ARGUMENTS)") names
            # neither the directory nor the cause, so look at the directory ourselves.
            problem = directory_problem(path)
            if problem:
                raise ConfigurationError(self._directory_message(path, problem)) from err
            raise engine_error(err, self.where) from err

    def _directory_message(self, path: str, problem: str) -> str:
        return (
            f"Embedded ClickHouse (connection {self.get_conn_id()!r}) cannot use its data directory "
            f"{path!r}: {problem}. Give the user running the tasks (uid {os.geteuid()}) read and write "
            "access to it, or set the connection's data directory (chdb_path) to one it can write."
        )

    @contextmanager
    def session(self) -> Iterator[Client]:
        """Yield a clickhouse-connect client, closed afterwards; in embedded mode, under the lock.

        An error of the engine inside the block is raised as :class:`ClickHouseEngineError`, whose
        message names the connection and the server or data directory.
        """
        path = self.chdb_path
        with ExitStack() as stack:
            if path:
                waited = stack.enter_context(file_lock(path + ".lock", self.lock_timeout))
                if waited > 1:
                    self.log.info("Waited %.1fs for the embedded ClickHouse lock", waited)
            client = self._open_client()
            stack.callback(client.close)
            try:
                yield client
            except engine_errors() as err:
                raise engine_error(err, self.where) from err

    def get_client(self) -> Client:
        """The raw client (caller closes it). In embedded mode prefer :meth:`session`, which locks."""
        return self._open_client()

    def get_conn(self) -> ClickHouseConnection:
        path = self.chdb_path
        if not path:
            return super().get_conn()
        lock = file_lock(path + ".lock", self.lock_timeout)
        lock.__enter__()
        try:
            return _LockedConnection(self._open_client(), lambda: lock.__exit__(None, None, None))
        except BaseException:
            lock.__exit__(None, None, None)
            raise

    def test_connection(self) -> tuple[bool, str]:
        """Open the server or the data directory and ask the version: the failure says why in words."""
        try:
            where = self.where
            with self.session() as client:
                version = client.command("SELECT version()")
        except (BackfillProviderError, TimeoutError) as err:
            return False, untransient(str(err), self.get_conn_id())
        except Exception as err:
            return False, untransient(str(engine_error(err, self.where)), self.get_conn_id())
        return True, untransient(f"Connected to ClickHouse {version}: {where}.", self.get_conn_id())

    # -- history table -------------------------------------------------------------------------

    def ensure_history_table(
        self, client: Client, table: str = DEFAULT_TABLE, columns: Sequence[Column] = HISTORY_COLUMNS
    ) -> None:
        """Create the history table with ``columns`` if it does not exist (once per hook and table).

        An existing table is left as it is: :meth:`add_missing_columns` adds what it lacks.
        """
        if table not in self._tables_ensured:
            client.command(clickhouse_history_ddl(table, columns))
            self._tables_ensured.add(table)

    # -- history columns -----------------------------------------------------------------------

    @staticmethod
    def table_columns(client: Client, table: str) -> list[str]:
        """The column names of ``table`` in their order; empty when the table does not exist."""
        return _columns.table_columns(client, table)

    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists (one session)."""
        with self.session() as client:
            return self._table_exists(client, table)

    def missing_columns(self, table: str, columns: str | Sequence[str] | None = None) -> list[str]:
        """The History ``columns`` (names, see
        :func:`~airflow_backfill_provider.historian.schema.history_columns`; default all 33) that
        ``table`` lacks, in schema order. Reads only.

        :raises ConfigurationError: when ``table`` does not exist (naming it), or a name is unknown.
        """
        selected = history_columns(columns)
        with self.session() as client:
            return [c.name for c in _columns.missing_columns(client, table, selected, self.where)]

    def add_missing_columns(self, table: str, columns: str | Sequence[str] | None = None) -> list[str]:
        """Add to ``table`` each of the History ``columns`` it lacks; return the names added.

        Each column gets the type the table's DDL would give it, and its place in schema order
        (``ALTER TABLE ... ADD COLUMN IF NOT EXISTS ... AFTER``), so the table ends up as if it had
        been created with those columns. Existing rows hold the column's default (NULL) until their
        window is loaded again. Idempotent: a second call adds nothing and returns ``[]``. In
        embedded mode it runs under the data directory's lock, like every session.

        :raises ConfigurationError: when ``table`` does not exist (naming it), or a name is unknown.
        """
        selected = history_columns(columns)
        with self.session() as client:
            return self._add_missing(client, table, selected)

    def ensure_history_columns(self, table: str, columns: str | Sequence[str] | None = None) -> list[str]:
        """Make ``table`` hold the History ``columns``: create it with just them when it does not
        exist (returning ``[]``), else add those it lacks (:meth:`add_missing_columns`), in one session."""
        selected = history_columns(columns)
        with self.session() as client:
            if not self._table_exists(client, table):
                self.ensure_history_table(client, table, selected)
                return []
            self._tables_ensured.add(table)
            return self._add_missing(client, table, selected)

    def _add_missing(self, client: Client, table: str, selected: Sequence[Column]) -> list[str]:
        added = _columns.add_missing_columns(client, table, selected, self.where)
        if added:
            self.log.info("Added %d History column(s) to %s: %s", len(added), table, ", ".join(added))
        return added

    def count_window(
        self, client: Client, table: str, tags: Sequence[str], start: datetime, end: datetime
    ) -> int:
        """Rows of ``tags`` in ``[start, end)``: a plain count, no FINAL."""
        result = client.query(
            f"SELECT count() FROM {quote_identifier(table)} WHERE {_WINDOW_WHERE}",
            parameters={"tags": list(tags), "start": start, "end": end},
        )
        return int(result.result_rows[0][0])

    def count_by_tag(self, table: str, tags: Sequence[str], start: datetime, end: datetime) -> dict[str, int]:
        """Rows per tag in ``[start, end)``, for reconciliation against the source."""
        with self.session() as client:
            if not self._table_exists(client, table):
                return {}
            result = client.query(
                f"SELECT TagName, count() FROM {quote_identifier(table)} WHERE {_WINDOW_WHERE} "
                "GROUP BY TagName",
                parameters={"tags": list(tags), "start": start, "end": end},
            )
            return {str(t): int(n) for t, n in result.result_rows}

    @staticmethod
    def _table_exists(client: Client, table: str) -> bool:
        where, params = system_table_filter(table, name_column="name")
        return bool(client.command(f"SELECT count() FROM system.tables WHERE {where}", parameters=params))

    def replace_window(
        self,
        *,
        table: str,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        spool_path: str | Sequence[str],
        expected_rows: int,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        """Make ``table`` hold exactly the spooled rows for ``tags`` × ``[start, end)``.

        Deletes whatever the window holds (an earlier run, or an attempt that died half-way), then
        inserts the spool (one or more Arrow IPC stream files, one INSERT each, so memory is bounded
        by the largest file), then checks the window's count equals ``expected_rows``. Safe to
        repeat: the end state depends only on the spool. An empty spool over a window that holds rows
        raises :class:`EmptyReadError` and changes nothing, unless ``allow_empty``.
        """
        with self.session() as client:
            self.ensure_history_table(client, table)
            existing = self._clear_window(
                client, table, tags, start, end, expected_rows=expected_rows, allow_empty=allow_empty
            )
            if expected_rows:
                for path in [spool_path] if isinstance(spool_path, str) else spool_path:
                    self._insert_spool(client, table, path)
            written = self.count_window(client, table, tags, start, end)
        return self._verified(table, tags, start, end, existing, written, expected_rows)

    def _clear_window(
        self,
        client: Client,
        table: str,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        expected_rows: int,
        allow_empty: bool = False,
    ) -> int:
        """Delete what ``table`` holds for ``tags`` × ``[start, end)`` before ``expected_rows`` rows
        replace it; return how many rows that was.

        A read that found nothing never silently empties a window that holds rows: a source table
        being reloaded, a wrong database or a filter that matches nothing would look just like it.
        """
        existing = self.count_window(client, table, tags, start, end)
        if existing and not expected_rows and not allow_empty:
            raise EmptyReadError(
                f"The source gave no row for {len(tags)} tag(s) in [{start.isoformat()}, {end.isoformat()}), "
                f"but {table} holds {existing} rows there: nothing was replaced. If the source is being "
                "reloaded, or the connection points at the wrong database, the task's retry may find "
                "the rows. If the history there was really deleted at the source, run again with "
                "allow_empty (the Param 'Let an empty read clear the window')."
            )
        if existing:
            # Lightweight delete: rows are masked at once for every later query (plain count()
            # included); the mutation that drops them physically runs in the background.
            client.command(
                f"DELETE FROM {quote_identifier(table)} WHERE {_WINDOW_WHERE}",
                parameters={"tags": list(tags), "start": start, "end": end},
                settings={"lightweight_deletes_sync": 2},
            )
        return existing

    @staticmethod
    def _verified(
        table: str,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        existing: int,
        written: int,
        expected: int,
    ) -> dict[str, Any]:
        if written != expected:
            raise ReconciliationError(
                f"{table}: the window {start.isoformat()} – {end.isoformat()} holds {written} rows for "
                f"{len(tags)} tags after the load, but the source gave {expected}. Re-run the task; "
                "if it persists, a concurrent writer is touching the same window."
            )
        return {"replaced_rows": existing, "written_rows": written}

    # -- staged window load: insert while the source is still being read ----------------------

    def stage(self, table: str, key: str) -> ClickHouseStage:
        """The stage of one chunk of ``table`` (``key`` names the chunk): a context manager that
        loads it while the source is read and commits it, owning its sessions (see
        :class:`~airflow_backfill_provider.hooks._clickhouse_stage.ClickHouseStage`)."""
        return ClickHouseStage(self, table, key)

    def _release_memory(self, client: Client) -> None:
        """Embedded mode: hand the memory the engine freed back to the operating system, since its
        allocator keeps freed pages and in embedded mode they count as the task's memory."""
        if self.chdb_path:
            client.command("SYSTEM JEMALLOC PURGE")

    def _insert_spool(self, client: Client, table: str, spool_path: str) -> None:
        """Insert the columns the spool file holds; the table's other columns take their defaults."""
        insert_spool(client, table, spool_path, embedded=bool(self.chdb_path))
        self._release_memory(client)


class EmbeddedClickHouseHook(ClickHouseBackfillHook):
    """
    Embedded ClickHouse (chdb) on a data directory: the hook of the ``chdb`` connection type.

    The same hook as :class:`ClickHouseBackfillHook`, registered under its own connection type so
    that the connection form asks for the data directory only, and its Test opens that directory.

    :param clickhouse_conn_id: Airflow connection id of type ``chdb``.
    """

    conn_type = CHDB_CONN_TYPE
    hook_name = "ClickHouse, embedded (chdb)"
