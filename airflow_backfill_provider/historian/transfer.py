"""One chunk from the historian to ClickHouse: spool, then replace the window. No Airflow import.

Two phases keep a chunk all-or-nothing and retry-safe (the target's window changes only once the
whole source window has been read):

1. **read**: stream the source window into local Arrow IPC files (the spool), batch by batch, so
   memory is bounded by the batch size; a new file starts every ``spool_rows`` rows. A source
   failure here (retried as a whole) writes nothing to ClickHouse.
2. **write**: in ClickHouse, delete what the window holds and insert the spool files (one INSERT
   each, so the engine's memory is bounded by ``spool_rows``), then check the count.
   A crash half-way leaves the window partial until the retry, which deletes and reloads it: the
   end state depends only on the source.

With a target that can stage (``open_stage``/``stage_spool``/``commit_stage``, as
:class:`~airflow_backfill_provider.hooks.clickhouse.ClickHouseBackfillHook` can), the two phases overlap:
each spool file is inserted into a staging table by a writer thread while the source is still
being read, and the write phase shrinks to "delete the window, move the staged parts in" (no data
copied). The target's window still changes only after a complete read; a failed read drops the
stage.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Rows per spool file, i.e. per ClickHouse INSERT and staged part. One embedded INSERT needs
# ~60 MB plus ~0.25 KB per row beside the reader: with 200k-row files a chunk's transfer adds
# ~240-270 MB whatever its size (measured at 1M and 5M rows); 100k rows saved ~60 MB and cost
# 10% of the speed on large chunks. Against a server the INSERT's memory is the server's, and
# larger files (fewer parts) are better.
DEFAULT_SPOOL_ROWS = 200_000
# How long a staged load keeps one target session across spool files before handing it back.
STAGE_SESSION_HOLD_SECONDS = 20.0


class HistorySource(Protocol):
    def iter_history_batches(
        self, tags: Sequence[str], start: datetime, end: datetime, **kw: Any
    ) -> Iterable: ...


class HistoryTarget(Protocol):
    def replace_window(self, **kw: Any) -> dict[str, Any]: ...


def spool_batches(batches: Iterable, path: str, schema) -> int:
    """Write record batches to an Arrow IPC stream file at ``path``; return the row count."""
    paths, rows = spool_files(batches, os.path.dirname(path) or ".", schema, name=os.path.basename(path))
    if len(paths) != 1:
        raise AssertionError("spool_files made several files without a row limit")
    return rows


def spool_files(
    batches: Iterable,
    directory: str,
    schema,
    *,
    rows_per_file: int | None = None,
    name: str = "spool",
    on_file: Callable[[str, int], None] | None = None,
) -> tuple[list[str], int]:
    """Write record batches to Arrow IPC stream files in ``directory``, starting a new file once one
    holds ``rows_per_file`` rows (never splitting a batch); return the paths and the row count.

    Always at least one file (possibly empty), so a load of nothing still has a spool to insert.
    ``on_file(path, rows)`` is called as soon as each file is complete.
    """
    import pyarrow as pa

    paths: list[str] = []
    total = 0
    sink = writer = None
    in_file = 0

    def open_next():
        nonlocal sink, writer, in_file
        path = os.path.join(
            directory, f"{name}" if rows_per_file is None else f"{name}-{len(paths):05d}.arrows"
        )
        sink = pa.OSFile(path, "wb")
        writer = pa.ipc.new_stream(sink, schema)
        paths.append(path)
        in_file = 0

    def close_current():
        nonlocal writer
        if writer is not None:
            writer.close()
            sink.close()
            writer = None

    try:
        open_next()
        for batch in batches:
            if not batch.num_rows:
                continue
            if rows_per_file is not None and in_file and in_file + batch.num_rows > rows_per_file:
                close_current()
                if on_file:
                    on_file(paths[-1], in_file)
                open_next()
            writer.write_batch(batch)
            in_file += batch.num_rows
            total += batch.num_rows
        close_current()
        if on_file:
            on_file(paths[-1], in_file)
    finally:
        close_current()
    return paths, total


class _StageWriter:
    """A thread inserting finished spool files into the target's staging table, in order, then
    running the commit in the same target session.

    It keeps one target session across files (a session per file costs memory that adds up over a
    large chunk in embedded mode) but hands it back after ``hold_seconds``, so in embedded mode,
    where a session holds the data directory's lock, other tasks' writes wait at most that long.
    """

    def __init__(self, target, stage: str, hold_seconds: float = STAGE_SESSION_HOLD_SECONDS) -> None:
        self.target, self.stage, self.hold_seconds = target, stage, hold_seconds
        self.error: BaseException | None = None
        self._result: Any = None
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="stage-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        session = client = None
        opened = 0.0
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.hold_seconds if session else None)
                except queue.Empty:  # idle while holding the session: hand it back
                    session.__exit__(None, None, None)
                    session = client = None
                    continue
                try:
                    if item is not None and self.error is None:
                        if session is None:
                            open_session = getattr(self.target, "stage_session", None)
                            session = open_session(self.stage) if open_session else self.target.session()
                            client = session.__enter__()
                            opened = time.monotonic()
                        if isinstance(item, str):
                            self.target.stage_spool(self.stage, item, client=client)
                        else:  # the last step, in this session (embedded: no second engine start)
                            self._result = item(client)
                except BaseException as err:  # reported to the reading thread
                    self.error = err
                finally:
                    if isinstance(item, str):
                        os.unlink(item)
                    self._queue.task_done()
                if item is None or not isinstance(item, str):
                    break
                if session is not None and time.monotonic() - opened > self.hold_seconds:
                    session.__exit__(None, None, None)
                    session = client = None
        finally:
            if session is not None:
                session.__exit__(None, None, None)

    def submit(self, path: str, rows: int) -> None:
        if self.error is not None:
            raise self.error  # stop reading: the load has failed already
        if rows:
            self._queue.put(path)
        else:
            os.unlink(path)

    def drain(self) -> None:
        """Wait until every submitted file is staged; raise the first error."""
        self._queue.join()
        if self.error is not None:
            raise self.error

    def finish(self, last: Callable[[Any], Any]) -> Any:
        """Run ``last(client)`` once the files are staged, in the same session; return its result."""
        self._queue.put(last)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self._result

    def finish_quietly(self) -> None:
        self.error = self.error or RuntimeError("read failed")  # skip the files still queued
        self._queue.put(None)
        self._thread.join()


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
    spool_rows: int = DEFAULT_SPOOL_ROWS,
    source_options: dict[str, Any] | None = None,
    staged: bool | None = None,
) -> dict[str, Any]:
    """Move ``tags`` × ``[start, end)`` from ``source`` to ``target``; return counts and timings.

    :param retry: ``retry(fn, what)`` calls ``fn`` with the source's retry policy; the whole read
        phase is retried, since a stream cannot resume mid-way.
    :param spool_rows: rows per spool file and ClickHouse INSERT (bounds the write phase's memory).
    :param staged: insert into a staging table while reading (default: when the target can).
    """
    from airflow_backfill_provider.historian.schema import arrow_history_schema

    if staged is None:
        staged = all(
            hasattr(target, m) for m in ("session", "open_stage", "stage_spool", "commit_stage", "drop_stage")
        )
    schema = arrow_history_schema()
    directory = tempfile.mkdtemp(prefix="wonderware-chunk-", dir=spool_dir)
    what = f"Reading History {start.isoformat()} – {end.isoformat()} ({len(tags)} tags)"
    started = time.monotonic()
    paths: list[str] = []
    stage: str | None = None
    writer: _StageWriter | None = None
    stage_key = f"{start.isoformat()}|{end.isoformat()}|" + "\x1f".join(tags)
    try:
        if staged:
            stage = target.open_stage(table, stage_key)

        def read() -> int:
            nonlocal paths, stage, writer
            for stale in os.listdir(directory):  # a failed attempt's partial files
                os.unlink(os.path.join(directory, stale))
            batches = source.iter_history_batches(
                tags, start, end, batch_size=batch_size, **(source_options or {})
            )
            if not staged:
                paths, rows = spool_files(batches, directory, schema, rows_per_file=spool_rows)
                return rows
            if stage is None:  # a retry: start from an empty stage
                stage = target.open_stage(table, stage_key)
            writer = _StageWriter(target, stage)
            try:
                _, rows = spool_files(
                    batches, directory, schema, rows_per_file=spool_rows, on_file=writer.submit
                )
                writer.drain()
            except BaseException:
                writer.finish_quietly()
                writer = None
                target.drop_stage(stage)
                stage = None
                raise
            return rows

        rows = retry(read, what)
        read_done = time.monotonic()
        if staged:
            try:
                written = writer.finish(
                    lambda client: target.commit_stage(
                        table=table,
                        stage=stage,
                        tags=list(tags),
                        start=start,
                        end=end,
                        expected_rows=rows,
                        client=client,
                    )
                )
            finally:
                writer = None
            stage = None
        else:
            written = target.replace_window(
                table=table, tags=list(tags), start=start, end=end, spool_path=paths, expected_rows=rows
            )
        done = time.monotonic()
    finally:
        if writer is not None:  # the read succeeded but something after it failed
            writer.finish_quietly()
        shutil.rmtree(directory, ignore_errors=True)
        if stage is not None:
            try:
                target.drop_stage(stage)
            except Exception:  # the original error matters more; the next attempt drops it anyway
                log.warning("Could not drop the staging table %s", stage, exc_info=True)
    return {
        "rows": rows,
        "replaced_rows": written.get("replaced_rows", 0),
        "seconds": round(done - started, 3),
        "read_seconds": round(read_done - started, 3),
        "write_seconds": round(done - read_done, 3),
        "staged": staged,
    }
