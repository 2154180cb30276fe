"""One chunk from the historian to ClickHouse: spool, then replace the window. No Airflow import.

Two phases keep a chunk all-or-nothing and retry-safe:

1. **read**: stream the source window into a local Arrow IPC file (the spool), batch by batch, so
   memory is bounded by the batch size. A source failure here (retried as a whole) writes nothing
   to ClickHouse.
2. **write**: in ClickHouse, delete what the window holds and insert the spool, then check the count.
   A crash half-way leaves the window partial until the retry, which deletes and reloads it: the
   end state depends only on the source.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)


class HistorySource(Protocol):
    def iter_history_batches(
        self, tags: Sequence[str], start: datetime, end: datetime, **kw: Any
    ) -> Iterable: ...


class HistoryTarget(Protocol):
    def replace_window(self, **kw: Any) -> dict[str, Any]: ...


def spool_batches(batches: Iterable, path: str, schema) -> int:
    """Write record batches to an Arrow IPC stream file at ``path``; return the row count."""
    import pyarrow as pa

    rows = 0
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            if batch.num_rows:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def transfer_chunk(
    source: HistorySource,
    target: HistoryTarget,
    *,
    table: str,
    tags: Sequence[str],
    start: datetime,
    end: datetime,
    batch_size: int,
    retry: Callable[[Callable[[], int], str], int],
    spool_dir: str | None = None,
    source_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move ``tags`` × ``[start, end)`` from ``source`` to ``target``; return counts and timings.

    :param retry: ``retry(fn, what)`` calls ``fn`` with the source's retry policy; the whole read
        phase is retried, since a stream cannot resume mid-way.
    """
    from airflow_backfill_provider.schema import arrow_history_schema

    schema = arrow_history_schema()
    fd, path = tempfile.mkstemp(prefix="wonderware-chunk-", suffix=".arrows", dir=spool_dir)
    os.close(fd)
    started = time.monotonic()
    try:

        def read() -> int:
            batches = source.iter_history_batches(
                tags, start, end, batch_size=batch_size, **(source_options or {})
            )
            return spool_batches(batches, path, schema)

        rows = retry(read, f"Reading History {start.isoformat()} – {end.isoformat()} ({len(tags)} tags)")
        read_done = time.monotonic()
        written = target.replace_window(
            table=table, tags=list(tags), start=start, end=end, spool_path=path, expected_rows=rows
        )
        done = time.monotonic()
    finally:
        os.unlink(path)
    return {
        "rows": rows,
        "replaced_rows": written.get("replaced_rows", 0),
        "seconds": round(done - started, 3),
        "read_seconds": round(read_done - started, 3),
        "write_seconds": round(done - read_done, 3),
    }
