"""Transfer one chunk (tags × window) from Wonderware Historian into ClickHouse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_backfill_provider.exceptions import ConfigurationError, fail_without_retry

# Light imports only: every task process of a DAG using this operator imports it while parsing the
# DAG file. The hooks (SQLAlchemy, the mssql provider, pyarrow, ClickHouse) are imported in execute.
from airflow_backfill_provider.historian.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TABLE,
    DEFAULT_TIME_ZONE,
    DEFAULT_VERSION,
    HISTORY_COLUMNS,
    column_names,
    history_columns,
)
from airflow_backfill_provider.utils import as_bool, check_identifier, to_utc

if TYPE_CHECKING:
    from airflow.sdk import Context


class WonderwareToClickHouseOperator(BaseOperator):
    """
    Load History rows of ``tags`` in ``[window_start, window_end)`` into a ClickHouse table, exactly.

    The window is replaced, not appended to: whatever the target holds for these tags in this window
    (an earlier run, or an attempt that died half-way) is deleted and the source rows inserted, so
    re-runs and retries never duplicate. Returns a small summary for XCom.

    :param tags: tag names (templated).
    :param window_start: inclusive start, ISO 8601 (templated).
    :param window_end: exclusive end, ISO 8601 (templated).
    :param chunk_id: an id for logs and the run summary (templated); default derived from the window.
    :param table: target ClickHouse table, created if missing (templated).
    :param wonderware_conn_id: connection of type ``wonderware``.
    :param clickhouse_conn_id: connection of type ``clickhouse`` (extra ``chdb_path`` for embedded).
    :param batch_size: rows per source batch; bounds memory.
    :param version: History ``wwVersion`` (default ``Latest``).
    :param time_zone: History ``wwTimeZone`` (default ``UTC``); ``None`` to leave it out.
    :param dry_run: count the source rows and log what would be loaded; write nothing (templated).
    :param allow_empty: let a read that finds no row empty a window the table holds rows for; without
        it the task fails and the window keeps its rows (templated).
    :param spool_dir: directory of the temporary spool file (default: the system temp dir).
    :param columns: the History columns to load, a list of names or one comma-separated string
        (templated); default all 33. ``DateTime`` and ``TagName`` are required; the order written does
        not matter. A new table gets just these columns; a selected column the table lacks is added
        before the load (existing rows hold NULL in it until their window is loaded again). Columns
        the table has beyond the selection are NULL in the windows this task loads.
    """

    template_fields: Sequence[str] = (
        "tags",
        "window_start",
        "window_end",
        "chunk_id",
        "table",
        "dry_run",
        "allow_empty",
        "columns",
    )
    ui_color = "#d7ecf7"

    def __init__(
        self,
        *,
        tags: list[str] | str,
        window_start: str,
        window_end: str,
        chunk_id: str | None = None,
        table: str = DEFAULT_TABLE,
        wonderware_conn_id: str = "wonderware_default",
        clickhouse_conn_id: str = "clickhouse_default",
        batch_size: int = DEFAULT_BATCH_SIZE,
        version: str | None = DEFAULT_VERSION,
        time_zone: str | None = DEFAULT_TIME_ZONE,
        dry_run: bool | str = False,
        allow_empty: bool | str = False,
        spool_dir: str | None = None,
        columns: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tags = tags
        self.window_start = window_start
        self.window_end = window_end
        self.chunk_id = chunk_id
        self.table = table
        self.wonderware_conn_id = wonderware_conn_id
        self.clickhouse_conn_id = clickhouse_conn_id
        self.batch_size = batch_size
        self.version = version
        self.time_zone = time_zone
        self.dry_run = dry_run
        self.allow_empty = allow_empty
        self.spool_dir = spool_dir
        self.columns = columns

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_without_retry():  # also a connection that is missing: it fails at once, named
            return self._load()

    def _load(self) -> dict[str, Any]:
        with fail_without_retry():
            tags, start, end, dry_run, columns = self._validated()
        chunk_id = self.chunk_id or f"{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"
        summary: dict[str, Any] = {
            "chunk_id": chunk_id,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "tags": len(tags),
        }
        self.log.info(
            "Chunk %s: %d tags (%s), %s – %s into %s",
            chunk_id,
            len(tags),
            _preview(tags),
            start.isoformat(),
            end.isoformat(),
            self.table,
        )
        source = self._source_hook()
        options = {
            "version": self.version,
            "time_zone": self.time_zone,
        }
        if dry_run:
            with fail_without_retry():  # a refused login or unknown database: retrying cannot help
                counts = source.count_rows(tags, start, end, **options)
            rows = sum(counts.values())
            self.log.info("Dry run: would replace the window with %d source rows; wrote nothing.", rows)
            return {**summary, "rows": 0, "source_rows": rows, "seconds": 0.0, "dry_run": True}

        from airflow_backfill_provider.historian.sync import clip_to_fence
        from airflow_backfill_provider.historian.transfer import transfer_chunk
        from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
        from airflow_backfill_provider.hooks.clickhouse_sync import read_fence

        target = ClickHouseBackfillHook(clickhouse_conn_id=self.clickhouse_conn_id)
        # Read before the source: the minute-level sync never writes below its claims from now on,
        # so stopping there keeps this chunk and the sync off each other's rows (docs/sync.md).
        with fail_without_retry():
            end, fenced = clip_to_fence(start, end, read_fence(target, self.table, tags))
        if fenced:
            self.log.info("Chunk %s: %s.", chunk_id, fenced)
        if end is None:
            return {**summary, "rows": 0, "seconds": 0.0, "fenced": True, "dry_run": False}
        with fail_without_retry():
            added = target.ensure_history_columns(self.table, columns)
        if added:
            self.log.info(
                "Chunk %s: added the column(s) %s to %s; the rows already there hold NULL in them "
                "until their windows are loaded again (a reload of the history, see "
                "docs/wonderware-backfill.md).",
                chunk_id,
                ", ".join(added),
                self.table,
            )
            summary["added_columns"] = added
        with fail_without_retry():
            result = transfer_chunk(
                source,
                target,
                table=self.table,
                tags=tags,
                start=start,
                end=end,
                batch_size=self.batch_size,
                retry=source.call_with_retry,
                spool_dir=self.spool_dir,
                source_options=options,
                columns=columns,
                allow_empty=as_bool(self.allow_empty, "allow_empty"),
            )
        rate = result["rows"] / result["seconds"] if result["seconds"] else 0.0
        self.log.info(
            "Chunk %s: %d rows in %.2fs (%.0f rows/s; read %.2fs, write %.2fs; %d stale rows replaced)",
            chunk_id,
            result["rows"],
            result["seconds"],
            rate,
            result["read_seconds"],
            result["write_seconds"],
            result["replaced_rows"],
        )
        return {**summary, **result, "dry_run": False}

    def _source_hook(self):
        from airflow_backfill_provider.hooks.wonderware import WonderwareHook

        return WonderwareHook(wonderware_conn_id=self.wonderware_conn_id)

    def _validated(self):
        tags = self.tags
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        if not isinstance(tags, (list, tuple)) or not tags or not all(isinstance(t, str) and t for t in tags):
            raise ConfigurationError(f"tags must be a non-empty list of tag names, got {self.tags!r}.")
        start = to_utc(self.window_start, "window_start")
        end = to_utc(self.window_end, "window_end")
        if end <= start:
            raise ConfigurationError(
                f"Empty or reversed window: window_start {self.window_start!r} is not before "
                f"window_end {self.window_end!r}."
            )
        check_identifier(self.table)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigurationError(f"batch_size must be a positive integer, got {self.batch_size!r}.")
        try:
            columns = history_columns(self.columns)
        except ConfigurationError as err:
            raise ConfigurationError(f"columns {self.columns!r}: {err}") from err
        if columns != HISTORY_COLUMNS:
            self.log.info(
                "Loading %d of the 33 History columns: %s", len(columns), ", ".join(column_names(columns))
            )
        return list(tags), start, end, as_bool(self.dry_run, "dry_run"), list(column_names(columns))


def _preview(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … (+{len(items) - limit})" if len(items) > limit else "")
