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

With a :class:`StagingTarget` (as :class:`~airflow_backfill_provider.hooks.clickhouse.ClickHouseBackfillHook`
is), the two phases overlap: a writer thread adds each spool file to the target's :class:`Stage`
while the source is still being read, then commits it, and the write phase shrinks to "delete the
window, move the staged rows in". The target's window still changes only after a complete read; a
failed read drops the stage.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from airflow_backfill_provider.historian.spool import make_spool_dir, sweep_spool

# Rows per spool file, i.e. per INSERT and staged part: it bounds the write's memory in embedded
# mode, where fewer, larger files would be faster (docs/performance.md has the figures).
DEFAULT_SPOOL_ROWS = 200_000


class HistorySource(Protocol):
    def iter_history_batches(
        self,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        batch_size: int,
        columns: Sequence[str],
        **kw: Any,
    ) -> Iterable:
        """Record batches of the History ``columns`` (names, in schema order) of ``tags`` in the window."""


class HistoryTarget(Protocol):
    """A target that loads a chunk after the read: the spool replaces the window in one call."""

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
    ) -> dict[str, Any]: ...


class Stage(Protocol):
    """One chunk's staging area in the target, filled while the source is read.

    One thread uses it as a context manager: entering creates it empty; leaving the block without a
    :meth:`commit`, or with an error, drops it, and the target's window is untouched.
    """

    #: Seconds without a new file after which the feeding thread calls :meth:`idle`.
    idle_timeout: float

    def __enter__(self) -> Stage: ...

    def __exit__(self, exc_type, exc, tb) -> None: ...

    def add(self, spool_path: str) -> None:
        """Stage one spool file (the caller deletes it afterwards)."""

    def idle(self) -> None:
        """No file is coming for a while: release what the stage holds between files."""

    def commit(
        self,
        *,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        expected_rows: int,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        """Make the window hold exactly the staged rows, checking there are ``expected_rows``;
        return ``{"replaced_rows": ..., "written_rows": ...}``. No rows over a window that holds
        some raise :class:`~airflow_backfill_provider.exceptions.EmptyReadError`, unless ``allow_empty``."""


@runtime_checkable
class StagingTarget(Protocol):
    """A target that can stage a chunk while it is read (:func:`transfer_chunk` then overlaps)."""

    def stage(self, table: str, key: str) -> Stage:
        """The stage of one chunk of ``table``; the same ``key`` names the same stage, so a retry finds it."""


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


class _ReadFailed(Exception):
    """Leaves a stage without a commit, so it is dropped."""


class _StageWriter:
    """A thread holding ``stage`` for its whole life: it adds the finished spool files in order while
    the source is read, then commits, so both run in the one thread the stage is used from.

    Creating the writer creates the empty stage (its errors are raised here). :meth:`abort` makes
    the thread skip the files still queued and leave the stage uncommitted, which drops it.
    """

    def __init__(self, stage: Stage) -> None:
        self.error: BaseException | None = None
        self._stage = stage
        self._result: dict[str, Any] | None = None
        self._queue: queue.Queue = queue.Queue()
        self._changed = threading.Condition()
        self._pending = 0  # files submitted but not yet staged
        self._running = True
        self._stopping = False
        self._entered = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stage-writer", daemon=True)
        self._thread.start()
        self._entered.wait()
        if self.error is not None:
            self._thread.join()
            raise self.error

    def _run(self) -> None:
        try:
            with self._stage as stage:
                self._entered.set()
                while True:
                    try:
                        item = self._queue.get(timeout=stage.idle_timeout)
                    except queue.Empty:
                        stage.idle()
                        continue
                    if self._stopping:
                        raise _ReadFailed
                    if isinstance(item, str):
                        try:
                            stage.add(item)
                        finally:
                            os.unlink(item)
                        with self._changed:
                            self._pending -= 1
                            self._changed.notify_all()
                    else:  # the read is complete: commit in this thread, where the files went in
                        self._result = stage.commit(**item)
                        return
        except _ReadFailed:
            pass
        except BaseException as err:  # reported to the reading thread
            self.error = err
        finally:
            with self._changed:
                self._running = False
                self._changed.notify_all()
            self._entered.set()

    def submit(self, path: str, rows: int) -> None:
        if self.error is not None:
            raise self.error  # stop reading: the load has failed already
        if not rows:
            os.unlink(path)
            return
        with self._changed:
            self._pending += 1
        self._queue.put(path)

    def drain(self) -> None:
        """Wait until every submitted file is staged; raise the first error."""
        with self._changed:
            self._changed.wait_for(lambda: not self._pending or not self._running)
        if self.error is not None:
            raise self.error

    def commit(self, **commit: Any) -> dict[str, Any]:
        """Have the thread commit the stage once the files are staged (``commit``: the arguments of
        :meth:`Stage.commit`); return the commit's result."""
        self._queue.put(commit)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self._result

    def abort(self) -> None:
        """Stop without a commit: the files still queued are skipped and the stage is dropped."""
        self._stopping = True
        self._queue.put(None)
        self._thread.join()


def transfer_chunk(
    source: HistorySource,
    target: HistoryTarget | StagingTarget,
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
    columns: str | Sequence[str] | None = None,
    allow_empty: bool = False,
) -> dict[str, Any]:
    """Move ``tags`` × ``[start, end)`` from ``source`` to ``target``; return counts and timings.

    Only ``columns`` travel (History column names, see
    :func:`~airflow_backfill_provider.historian.schema.history_columns`; default all 33): the source
    reads them, the spool holds them, and the target fills the columns it has beyond them with their
    defaults (NULL). The target must already have every selected column.

    :param retry: ``retry(fn, what)`` calls ``fn`` with the source's retry policy; the whole read
        phase is retried, since a stream cannot resume mid-way.
    :param spool_rows: rows per spool file and ClickHouse INSERT (bounds the write phase's memory).
    :param staged: insert into a staging table while reading (default: when the target can).
    :param allow_empty: let a read that found no row empty a window the target holds rows for
        (else :class:`~airflow_backfill_provider.exceptions.EmptyReadError`, and nothing changes).
    """
    from airflow_backfill_provider.historian.schema import arrow_history_schema, column_names, history_columns

    selected = history_columns(columns)
    if staged is None:
        staged = isinstance(target, StagingTarget)
    elif staged and not isinstance(target, StagingTarget):
        raise TypeError(f"{type(target).__name__} has no stage(table, key): it cannot load staged.")
    schema = arrow_history_schema(selected)
    sweep_spool(spool_dir)
    directory = make_spool_dir(spool_dir)
    what = f"Reading History {start.isoformat()} – {end.isoformat()} ({len(tags)} tags)"
    started = time.monotonic()
    paths: list[str] = []
    writer: _StageWriter | None = None
    stage_key = f"{start.isoformat()}|{end.isoformat()}|" + "\x1f".join(tags)
    try:
        if staged:
            writer = _StageWriter(target.stage(table, stage_key))

        def read() -> int:
            nonlocal paths, writer
            for stale in os.listdir(directory):  # a failed attempt's partial files
                os.unlink(os.path.join(directory, stale))
            batches = source.iter_history_batches(
                tags,
                start,
                end,
                batch_size=batch_size,
                columns=column_names(selected),
                **(source_options or {}),
            )
            if not staged:
                paths, rows = spool_files(batches, directory, schema, rows_per_file=spool_rows)
                return rows
            if writer is None:  # a retry: start from an empty stage
                writer = _StageWriter(target.stage(table, stage_key))
            try:
                _, rows = spool_files(
                    batches, directory, schema, rows_per_file=spool_rows, on_file=writer.submit
                )
                writer.drain()
            except BaseException:
                writer.abort()
                writer = None
                raise
            return rows

        rows = retry(read, what)
        read_done = time.monotonic()
        if staged:
            try:
                written = writer.commit(
                    tags=list(tags), start=start, end=end, expected_rows=rows, allow_empty=allow_empty
                )
            finally:
                writer = None
        else:
            written = target.replace_window(
                table=table,
                tags=list(tags),
                start=start,
                end=end,
                spool_path=paths,
                expected_rows=rows,
                allow_empty=allow_empty,
            )
        done = time.monotonic()
    finally:
        if writer is not None:  # no read reached the commit (the retry refused to start one)
            writer.abort()
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "rows": rows,
        "replaced_rows": written.get("replaced_rows", 0),
        "seconds": round(done - started, 3),
        "read_seconds": round(read_done - started, 3),
        "write_seconds": round(done - read_done, 3),
        "staged": staged,
    }
