"""Loading a spool file (Arrow IPC stream) into a ClickHouse table, embedded or over HTTP.

Embedded (chdb) reads the file natively with ``INSERT ... SELECT FROM file()``, no Python object per
row; a server gets it through ``insert_arrow`` in requests of at most :data:`SERVER_INSERT_ROWS`
rows. Both insert exactly the columns the file holds, with the server's deduplication off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.utils import quote_identifier

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

# Rows per insert_arrow request when streaming a spool file to a ClickHouse server.
SERVER_INSERT_ROWS = 500_000


def no_deduplication(client: Client) -> dict[str, Any]:
    """Settings that turn the server's insert deduplication off, spelled as its version knows them.

    Every load of a window (a re-run, a retry, a spool file that repeats a block) must land in full:
    exactness comes from replacing the window and counting it, never from the server dropping a
    block it has seen. ReplicatedMergeTree deduplicates inserts by default (so does a MergeTree with
    ``non_replicated_deduplication_window``), which turned a re-run into a ReconciliationError.
    ClickHouse 26 replaced ``insert_deduplicate`` by ``deduplicate_insert`` (the old one is then
    ignored).
    """
    known = client.server_settings
    if "deduplicate_insert" in known:
        settings: dict[str, Any] = {"deduplicate_insert": "disable"}
        if "deduplicate_insert_select" in known:
            settings["deduplicate_insert_select"] = "disable"
        return settings
    return {"insert_deduplicate": 0}


def insert_spool(client: Client, table: str, spool_path: str, *, embedded: bool) -> None:
    """Insert the columns the spool file holds; the table's other columns take their defaults."""
    import pyarrow as pa

    if embedded:
        with pa.OSFile(spool_path, "rb") as source:
            names = pa.ipc.open_stream(source).schema.names
        cols = ", ".join(f"`{c}`" for c in names)
        # The embedded engine reads the Arrow file natively, with no Python object per row.
        if "'" in spool_path or "\\" in spool_path:
            raise ConfigurationError(f"Spool path {spool_path!r} must not contain quotes or backslashes.")
        client.command(
            f"INSERT INTO {quote_identifier(table)} ({cols}) "
            f"SELECT {cols} FROM file('{spool_path}', 'ArrowStream')",
            # pread, not mmap, so spool pages do not count in the task's RSS; one thread, since each
            # has its own buffers and a staged load runs beside the source read.
            settings={
                "storage_file_read_method": "pread",
                "max_threads": 1,
                "max_insert_threads": 1,
                **no_deduplication(client),
            },
        )
        return
    settings = no_deduplication(client)
    with pa.OSFile(spool_path, "rb") as source:
        reader = pa.ipc.open_stream(source)
        pending: list = []
        pending_rows = 0
        for batch in reader:
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= SERVER_INSERT_ROWS:
                client.insert_arrow(table, pa.Table.from_batches(pending), settings=settings)
                pending, pending_rows = [], 0
        if pending:
            client.insert_arrow(table, pa.Table.from_batches(pending), settings=settings)
