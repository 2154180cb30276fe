"""Loading the simulated historian into a database: ``TagRef`` and ``History`` at any SQLAlchemy URL.

Slices are loaded as Arrow tables (ADBC bulk ingest, PostgreSQL COPY, or SQLAlchemy executemany as
the last resort), so a million rows take seconds and memory stays bounded by one slice.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.queries import history_tables
from airflow_backfill_provider.testing.generation import (
    CONSTANT_COLUMNS,
    NULL_COLUMNS,
    SimulatorConfig,
    history_slices,
    plan_tags,
    tagref_rows,
)
from airflow_backfill_provider.utils import iso

log = logging.getLogger(__name__)


@dataclass
class SimulationSummary:
    """What a simulation wrote. ``rows``/``tags`` are per tag type, Sys tags counted as ``system``."""

    url: str
    loader: str
    tags: dict[str, int]
    rows: dict[str, int]
    total_rows: int
    boundary_rows: int
    null_values: int
    first: str | None
    last: str | None
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def simulate(
    url: str,
    config: SimulatorConfig,
    *,
    replace: bool = False,
    schema: str | None = None,
    method: str = "auto",
) -> SimulationSummary:
    """Create ``TagRef``/``History`` at ``url`` if missing (``replace`` drops them first) and load.

    :param method: ``auto`` (fastest available), ``adbc``, ``copy`` (PostgreSQL only) or ``executemany``
    """
    began = time.perf_counter()
    tags = plan_tags(config)
    engine = sa.create_engine(url)
    try:
        # A History created here has the constant columns as server defaults, so only the varying
        # columns travel: that halves the load time. An existing table gets every column.
        tagref, history = history_tables(sa.MetaData(), schema, CONSTANT_COLUMNS)
        new_history = _create_tables(engine, tagref, history, replace)
        omit = [*CONSTANT_COLUMNS, *NULL_COLUMNS] if new_history else []
        with engine.begin() as conn:
            existing = set(conn.scalars(sa.select(tagref.c.TagName)))
            missing = [r for r in tagref_rows(tags) if r["TagName"] not in existing]
            if missing:
                conn.execute(tagref.insert(), missing)
        per_tag = np.zeros(len(tags), dtype=np.int64)
        nulls = boundary = 0
        first = last = None
        with _history_sink(engine, history, method) as (loader, write):
            for table, stats in history_slices(config, tags):
                write(table.drop_columns(omit))
                per_tag += stats["per_tag"]
                nulls += table.column("Value").null_count
                boundary += stats["boundary"]
                first = min(first, stats["first"]) if first is not None else stats["first"]
                last = max(last, stats["last"]) if last is not None else stats["last"]
                log.debug("Loaded %d rows (%d so far)", table.num_rows, int(per_tag.sum()))
        if new_history:  # indexing after the bulk load is much cheaper than during it
            with engine.begin() as conn:
                for index in history.indexes:
                    index.create(conn, checkfirst=True)
    finally:
        engine.dispose()
    groups = ["system" if t.system else t.tag_type for t in tags]
    return SimulationSummary(
        url=engine.url.render_as_string(hide_password=True),
        loader=loader,
        tags={g: groups.count(g) for g in dict.fromkeys(groups)},
        rows={
            g: int(sum(n for n, h in zip(per_tag, groups, strict=True) if h == g))
            for g in dict.fromkeys(groups)
        },
        total_rows=int(per_tag.sum()),
        boundary_rows=boundary,
        null_values=nulls,
        first=_iso(first),
        last=_iso(last),
        seconds=round(time.perf_counter() - began, 3),
    )


def _create_tables(engine: sa.Engine, tagref: sa.Table, history: sa.Table, replace: bool) -> bool:
    """Create the tables (History without its index, added after the load); True if History is new."""
    with engine.begin() as conn:
        if replace:
            history.drop(conn, checkfirst=True)
            tagref.drop(conn, checkfirst=True)
        tagref.create(conn, checkfirst=True)
        if sa.inspect(conn).has_table(history.name, schema=history.schema):
            return False
        conn.execute(sa.schema.CreateTable(history))
        return True


@contextmanager
def _history_sink(engine: sa.Engine, history: sa.Table, method: str):
    """Yield ``(loader name, write(arrow_table))``; everything is committed at the end, or nothing."""
    backend, url = engine.dialect.name, engine.url
    path = url.database
    if method == "auto":
        method = "executemany"
        if backend == "postgresql" and _importable("adbc_driver_postgresql"):
            method = "adbc"
        elif backend == "postgresql" and _importable("psycopg"):
            method = "copy"
        elif backend == "sqlite" and path and path != ":memory:" and history.schema is None:
            method = "adbc" if _importable("adbc_driver_sqlite") else "executemany"
    if method == "adbc" and backend == "postgresql":
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(_libpq_uri(url)) as conn, conn.cursor() as cur:
            yield (
                "adbc",
                lambda t: cur.adbc_ingest(history.name, t, mode="append", db_schema_name=history.schema),
            )
            conn.commit()
    elif method == "adbc" and backend == "sqlite":
        import adbc_driver_sqlite.dbapi as adbc

        with adbc.connect(path) as conn, conn.cursor() as cur:
            yield "adbc", lambda t: cur.adbc_ingest(history.name, _sqlite_times(t), mode="append")
            conn.commit()
    elif method == "copy" and backend == "postgresql":
        import psycopg
        import pyarrow.csv as pacsv

        preparer = engine.dialect.identifier_preparer
        options = pacsv.WriteOptions(include_header=False)

        def copy(table: pa.Table) -> None:
            columns = ", ".join(preparer.quote(name) for name in table.column_names)
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, options)  # strings quoted, NULLs empty: PostgreSQL's CSV
            with cur.copy(f"COPY {preparer.format_table(history)} ({columns}) FROM STDIN (FORMAT csv)") as cp:
                cp.write(memoryview(sink.getvalue()))

        with psycopg.connect(_libpq_uri(url)) as conn, conn.cursor() as cur:
            yield "copy", copy
    elif method == "executemany":
        with engine.begin() as conn:

            def insert(table: pa.Table) -> None:
                for batch in table.to_batches(max_chunksize=20_000):
                    conn.execute(history.insert(), batch.to_pylist())

            yield "executemany", insert
    else:
        raise ConfigurationError(f"Load method {method!r} is not available for {backend}; use 'auto'.")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _libpq_uri(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_times(table: pa.Table) -> pa.Table:
    """SQLite has no timestamp type: store the text SQLAlchemy's DateTime writes and compares.

    A cast of a naive microsecond timestamp gives exactly that: ``2025-01-01 00:00:00.000000``.
    """
    for i, name in enumerate(table.column_names):
        if pa.types.is_timestamp(table.schema.field(i).type):
            field_ = pa.field(name, pa.string(), nullable=table.schema.field(i).nullable)
            table = table.set_column(i, field_, pc.cast(table.column(i), pa.string()))
    return table


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso(datetime.fromtimestamp(ms / 1000, timezone.utc))
