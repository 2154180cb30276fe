"""Arrow-native History readers: no Python object per value on the read side. No Airflow import.

The queries are the ones :class:`~airflow_backfill_provider.historian.queries.Historian` builds with
SQLAlchemy Core; only how they reach the database differs:

* **PostgreSQL** (psycopg + pyarrow's CSV reader): ``COPY (query) TO STDOUT (FORMAT csv)`` streams
  the rows as CSV text, which pyarrow parses into Arrow columns in C++ (faster than the ADBC
  driver's binary ``COPY`` decoder; figures in docs/performance.md). The session's settings fix the
  text (UTC ISO timestamps, shortest-exact floats, UTF-8); NULL and '' stay apart (unquoted vs
  quoted empty field); NaN, infinities and every string survive, which the tests check value by
  value. PostgreSQL accepts no bound parameter in ``COPY``, so the chunk's values (tags, window,
  retrieval options) are copied into a session ``TEMPORARY`` table and the query reads them from
  there (:meth:`~airflow_backfill_provider.historian.queries.Historian.history_query_from_params`): the SQL
  text holds no value at all, a hostile tag name is a row of data.
* **SQLite** (``adbc-driver-sqlite``): the ordinary statement with ``?`` parameters; the driver
  steps the statement and emits batches of ``batch_size`` rows.

* **SQL Server** (mssql-python): its Arrow fetch, see :mod:`~airflow_backfill_provider.historian.mssql_reader`.

Every batch is normalised to :func:`~airflow_backfill_provider.historian.schema.arrow_history_schema`
of the selected columns by :func:`normalize_batch`, so the spool is the same whichever reader ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.historian.pg_copy import CopyOut
from airflow_backfill_provider.historian.queries import Historian, window_params, window_params_table
from airflow_backfill_provider.historian.schema import HISTORY_COLUMNS, Column, arrow_history_schema

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import URL

# Which Python package reads which SQLAlchemy backend into Arrow.
ARROW_DRIVERS = {"mssql": "mssql_python", "postgresql": "psycopg", "sqlite": "adbc_driver_sqlite"}
# Bytes of PostgreSQL CSV per History row, so that the CSV reader's blocks hold about ``batch_size`` rows.
_PG_CSV_BYTES_PER_ROW = 175
# The largest CSV block: larger ones are no faster, and pyarrow's parser keeps more memory for them.
_PG_CSV_BLOCK_BYTES = 1 << 20
# The reading session's settings, so that the CSV text does not depend on the server's or the role's.
_PG_SESSION = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET client_encoding = 'UTF8'",
    "SET extra_float_digits = 3",  # floats printed so that they parse back to the same double
    "SET work_mem = '64MB'",  # the window's bitmap index scan stays exact (not lossy) on large chunks
)
# SQLAlchemy's DateTime on SQLite is text in this format; bound values must match it to compare.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
# One value of the right SQLite storage class per History column (see _iter_sqlite).
_SQLITE_TYPE_ROW = {
    c.name: {"datetime": "1970-01-01 00:00:00.000000", "str": "\x00abp-types", "float": 0.5, "int": 0}[c.kind]
    for c in HISTORY_COLUMNS
}


def arrow_driver_available(backend: str) -> bool:
    """True when the Arrow reader of the SQLAlchemy backend name can be imported."""
    import importlib.util

    module = ARROW_DRIVERS.get(backend)
    return module is not None and importlib.util.find_spec(module) is not None


def iter_arrow_batches(
    url: URL,
    historian: Historian,
    tags: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    batch_size: int,
    streams: int = 1,
    columns: Sequence[Column] = HISTORY_COLUMNS,
    tls: Mapping[str, Any] | None = None,
    **options: Any,
) -> Iterator[pa.RecordBatch]:
    """History rows of ``tags`` in the window as normalised Arrow batches of at most ``batch_size`` rows.

    :param columns: the History columns to read (default all 33), in schema order.
    :param streams: PostgreSQL only: read the tags in this many groups at once, each on its own
        connection and thread (parsing runs outside the GIL, so the groups use separate cores).
        Rows are the same; their order is not.
    :param tls: SQL Server only: ``encrypt`` and ``trust_server_certificate`` (see
        :func:`~airflow_backfill_provider.historian.mssql_reader.connection_string`).
    """
    schema = arrow_history_schema(columns)
    backend = url.get_backend_name()
    if backend == "postgresql":
        unique = list(dict.fromkeys(tags))
        groups = [unique[i :: max(1, streams)] for i in range(min(max(1, streams), len(unique)))]
        sources = [
            _iter_postgresql(url, historian, g, start, end, batch_size, columns, options) for g in groups
        ]
        raw = sources[0] if len(sources) == 1 else _interleave(sources, depth=2)
    elif backend == "mssql":
        from airflow_backfill_provider.historian.mssql_reader import iter_mssql_batches

        raw = iter_mssql_batches(
            url, historian, tags, start, end, batch_size=batch_size, columns=columns, tls=tls, **options
        )
    elif backend == "sqlite":
        raw = _iter_sqlite(url, historian, tags, start, end, batch_size, columns, options)
    else:
        raise ValueError(f"No Arrow reader for {backend!r}; use the DB-API reader.")
    for batch in raw:
        for offset in range(0, batch.num_rows, batch_size):  # zero-copy slices: memory per batch
            yield normalize_batch(batch.slice(offset, batch_size), schema)


def _interleave(sources: list[Iterator], depth: int) -> Iterator:
    """Run each iterator in its own thread; yield their items as they come. At most ``depth`` items
    per source wait in the queue (memory stays bounded); the first error stops everything."""
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth * len(sources))
    stop = threading.Event()
    done = object()

    def pump(source: Iterator) -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put((None, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as err:  # handed to the consumer
            items.put((err, None))
            return
        finally:
            close = getattr(source, "close", None)
            if close:
                close()
        items.put((None, done))

    threads = [
        threading.Thread(target=pump, args=(s,), name=f"arrow-stream-{i}", daemon=True)
        for i, s in enumerate(sources)
    ]
    for t in threads:
        t.start()
    finished = 0
    try:
        while finished < len(sources):
            err, item = items.get()
            if err is not None:
                raise err
            if item is done:
                finished += 1
            else:
                yield item
    finally:
        stop.set()
        while any(t.is_alive() for t in threads):  # unblock producers waiting on a full queue
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass
        for t in threads:
            t.join()


def _iter_postgresql(url, historian, tags, start, end, batch_size, columns, options):
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    dialect = postgresql.dialect()
    params = window_params_table(sa.MetaData())
    sql = str(
        historian.history_query_from_params(params, columns=columns, **options).compile(dialect=dialect)
    )
    values = window_params(tags, start, end, **options)
    # The CSV parser's types: naive timestamps (UTC wall time, see normalize_batch), the rest as stored.
    types = {
        f.name: pa.timestamp(f.type.unit) if pa.types.is_timestamp(f.type) else f.type
        for f in arrow_history_schema(columns)
    }
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(conninfo, autocommit=True)
    try:
        for setting in _PG_SESSION:
            conn.execute(setting)
        conn.execute(str(CreateTable(params).compile(dialect=dialect)))
        with conn.cursor() as cur:
            names = ", ".join(dialect.identifier_preparer.quote(c) for c in values.column_names)
            with cur.copy(f"COPY {params.name} ({names}) FROM STDIN") as copy:
                for row in zip(*(c.to_pylist() for c in values.columns), strict=True):
                    copy.write_row(row)
            # Real statistics of the tiny params table let the planner pick the (TagName, DateTime)
            # index per tag on a large History instead of a guess-driven plan.
            cur.execute(f"ANALYZE {params.name}")
        copy_out = CopyOut(conn, f"COPY ({sql}) TO STDOUT (FORMAT csv)")
        if copy_out.at_end():  # an empty window (pyarrow refuses an empty CSV)
            return
        reader = pacsv.open_csv(
            copy_out,
            read_options=pacsv.ReadOptions(
                column_names=[c.name for c in columns],
                block_size=min(_PG_CSV_BLOCK_BYTES, max(1 << 16, batch_size * _PG_CSV_BYTES_PER_ROW)),
                use_threads=False,
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                # PostgreSQL's CSV: NULL is an unquoted empty field, '' a quoted one
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        try:
            yield from reader
        finally:
            reader.close()
    finally:
        # A COPY still running (the consumer stopped early, or an error) ends with the connection:
        # the server stops the query when the client is gone.
        conn.close()


def _iter_sqlite(url, historian, tags, start, end, batch_size, columns, options):
    import adbc_driver_sqlite

    from airflow_backfill_provider.historian.arrow_arrays import arrow_array, arrow_type_of
    import pyarrow as pa
    import sqlalchemy as sa
    from sqlalchemy.dialects import sqlite

    path = url.database
    if not path or path == ":memory:":
        raise ValueError("The Arrow reader needs an SQLite file, not an in-memory database.")
    stmt = historian.history_query(tags, start, end, columns=columns, **options)
    # The driver infers each column's type from the values of the first batch, and a column that is
    # NULL there (wwUnit of discrete tags, say) becomes INT64, so a later text value fails the read.
    # A first row with a typed value in every column fixes the types; it is dropped below.
    type_row = sa.select(*(sa.literal(_SQLITE_TYPE_ROW[c.name]).label(c.name) for c in columns))
    stmt = sa.union_all(type_row, stmt)
    compiled = stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True})
    values = [_sqlite_value(compiled.params[name]) for name in compiled.positiontup]
    bind = pa.record_batch(
        [arrow_array([v], arrow_type_of(v)) for v in values], names=[f"p{i}" for i in range(len(values))]
    )
    with (
        _connect(adbc_driver_sqlite.connect, path) as conn,
        closing(
            _execute_query(
                conn, compiled.string, bind=bind, options={"adbc.sqlite.query.batch_rows": str(batch_size)}
            )
        ) as batches,
    ):
        first = True
        for batch in batches:
            if first:
                if not batch.num_rows or batch.column("TagName")[0].as_py() != _SQLITE_TYPE_ROW["TagName"]:
                    raise RuntimeError("SQLite returned the UNION ALL branches out of order.")
                batch, first = batch.slice(1), False
            yield batch


# ADBC's low-level API, since its DB-API module imports pandas, slow to load in every task process.
@contextmanager
def _connect(open_database, target: str):
    import adbc_driver_manager

    database = open_database(target)
    try:
        connection = adbc_driver_manager.AdbcConnection(database)
        try:
            yield connection
        finally:
            connection.close()
    finally:
        database.close()


def _execute_query(conn, sql: str, *, bind=None, options: dict | None = None) -> Iterator[pa.RecordBatch]:
    import adbc_driver_manager
    import pyarrow as pa

    stmt = adbc_driver_manager.AdbcStatement(conn)
    try:
        if options:
            stmt.set_options(**options)
        stmt.set_sql_query(sql)
        if bind is not None:
            schema_capsule, array_capsule = bind.__arrow_c_array__()
            stmt.bind(array_capsule, schema_capsule)
        handle, _ = stmt.execute_query()
        reader = pa.RecordBatchReader._import_from_c(handle.address)
        try:
            yield from reader
        finally:
            reader.close()
    finally:
        stmt.close()


def _sqlite_value(value):
    return value.strftime(_SQLITE_DATETIME) if isinstance(value, datetime) else value


def normalize_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a driver's batch to ``schema``: timestamps to UTC microseconds (text timestamps of SQLite
    parsed), integers and floats widened, all-NULL columns typed, driver metadata dropped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if batch.num_columns != len(schema) or batch.schema.names != schema.names:
        raise ValueError(
            f"History batch has columns {batch.schema.names}, expected {schema.names}: the reader's "
            "query and the schema disagree."
        )
    arrays = []
    for column, field in zip(batch.columns, schema, strict=True):
        if column.type == field.type:
            arrays.append(column)
        elif pa.types.is_null(column.type):
            arrays.append(pa.nulls(len(column), field.type))
        elif pa.types.is_timestamp(field.type):
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                column = pc.cast(column, pa.timestamp(field.type.unit))
            # Naive columns hold UTC wall time, and a naive-to-UTC cast keeps the wall time. Sub-
            # microsecond digits (DATETIME2(7)) are truncated, as the DB-API path's datetimes are.
            arrays.append(column.cast(field.type, safe=False))
        else:
            arrays.append(column.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
