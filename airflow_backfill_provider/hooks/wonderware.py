"""AVEVA/Wonderware Historian (SQL Server) as a backfill source."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

from airflow_backfill_provider.exceptions import ConfigurationError, SourceUnavailableError
from airflow_backfill_provider.historian.planning import select_tags
from airflow_backfill_provider.historian.queries import Historian, rows_to_batch
from airflow_backfill_provider.historian.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TAG_TYPES,
    arrow_history_schema,
    history_columns,
)
from airflow_backfill_provider.historian.source_errors import (
    configuration_problem,
    driver_message,
    is_timeout,
    is_transient_source_error,
    unreachable,
)
from airflow_backfill_provider.hooks._test_message import untransient
from airflow_backfill_provider.hooks._wonderware_connection import (
    LEGACY_URL_EXTRA,
    READERS,
    URL_EXTRA,
    connection_url,
    describe_url,
    extra_value,
    resolve_reader,
    retry_policy_from_extra,
    tls_settings,
    url_password_warning,
)
from airflow_backfill_provider.resilience import CircuitBreaker, RetryPolicy, call_with_retry

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import URL, Engine

__all__ = [
    "LEGACY_URL_EXTRA",
    "READERS",
    "URL_EXTRA",
    "WonderwareHook",
    "connection_url",
    "is_transient_source_error",
    "resolve_reader",
    "retry_policy_from_extra",
]

# Connections the Arrow reader opens per chunk on PostgreSQL, each reading a share of the tags: the
# CSV is parsed outside the GIL, so streams can use several cores, at a few MB and one more source
# backend each; on 2 cores, where PostgreSQL needs one of them, it does not pay.
DEFAULT_ARROW_STREAMS = 1


class WonderwareHook(MsSqlHook):
    """
    Read tags and history from AVEVA/Wonderware Historian.

    Production: SQL Server through pymssql (the mssql provider). The connection extra
    ``sqlalchemy_url`` points the same queries at any database holding ``TagRef``/``History``
    (PostgreSQL and SQLite copies in tests and the demo).

    :param wonderware_conn_id: Airflow connection id of type ``wonderware``.
    :param source_schema: schema of TagRef/History (e.g. ``dbo``); default: the connection's default.
    :param retry_policy: retries of transient source errors; default 4 attempts, 1 s doubling.
    :param breaker: circuit breaker shared by this hook's calls; default opens after 5 failures.
    :param reader: how History is read: ``auto``, ``arrow`` or ``dbapi``; default: the connection
        extra ``reader``, else ``auto``.
    """

    conn_name_attr = "wonderware_conn_id"
    default_conn_name = "wonderware_default"
    conn_type = "wonderware"
    hook_name = "Wonderware / AVEVA Historian"

    def __init__(
        self,
        wonderware_conn_id: str = default_conn_name,
        *,
        source_schema: str | None = None,
        retry_policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        reader: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(wonderware_conn_id=wonderware_conn_id, **kwargs)
        self.source_schema = source_schema
        self._reader = reader
        self._retry_policy = retry_policy
        self._breaker = breaker
        self.historian = Historian(schema=source_schema)
        self._engine: Engine | None = None
        self._warned = False

    @property
    def retry_policy(self) -> RetryPolicy:
        """From the constructor, else the connection extra (``retry_attempts``, ``retry_base_delay``,
        ``retry_max_delay``), else the defaults."""
        if self._retry_policy is None:
            self._retry_policy = retry_policy_from_extra(self.connection.extra_dejson)
        return self._retry_policy

    @property
    def breaker(self) -> CircuitBreaker:
        if self._breaker is None:
            extra = self.connection.extra_dejson
            try:
                self._breaker = CircuitBreaker(
                    failure_threshold=int(extra_value(extra, "breaker_threshold", 5)),
                    reset_timeout=float(extra_value(extra, "breaker_reset_seconds", 60)),
                )
            except (TypeError, ValueError) as err:
                raise ConfigurationError(
                    f"Invalid circuit breaker settings in the Wonderware connection extra: {err}"
                ) from err
        return self._breaker

    @property
    def sqlalchemy_url(self) -> URL | str:  # type: ignore[override]
        conn = self.connection
        extra = conn.extra_dejson
        if not self._warned:
            self._warned = True
            warning = url_password_warning(extra, conn.password)
            if warning:
                self.log.warning("Connection %r: %s", self.get_conn_id(), warning)
        return connection_url(
            host=conn.host,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            schema=conn.schema,
            extra=extra,
        )

    @property
    def reader(self) -> str:
        """The History reader in use, ``"arrow"`` or ``"dbapi"`` (see :data:`READERS`)."""
        requested = self._reader if self._reader is not None else self.connection.extra_dejson.get("reader")
        return resolve_reader(requested, self._url().get_backend_name())

    @property
    def arrow_streams(self) -> int:
        """Parallel source connections of the Arrow reader on PostgreSQL (connection extra
        ``arrow_streams``, default :data:`DEFAULT_ARROW_STREAMS`)."""
        value = extra_value(self.connection.extra_dejson, "arrow_streams", DEFAULT_ARROW_STREAMS)
        try:
            streams = int(value)
        except (TypeError, ValueError):
            streams = 0
        if streams < 1:
            raise ConfigurationError(f"arrow_streams must be a positive integer, got {value!r}.")
        return streams

    def _url(self) -> URL:
        from sqlalchemy.engine import make_url

        return make_url(self.sqlalchemy_url)

    @property
    def dialect_name(self) -> str:
        return self.get_sqlalchemy_engine().dialect.name

    def get_uri(self) -> str:
        url = self.sqlalchemy_url
        return url if isinstance(url, str) else url.render_as_string(hide_password=False)

    def get_sqlalchemy_engine(self, engine_kwargs: dict | None = None) -> Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.sqlalchemy_url, pool_pre_ping=True, **(engine_kwargs or {}))
        return self._engine

    def get_conn(self):
        """A DB-API connection from the engine, so DbApiHook methods work on every backend."""
        return self.get_sqlalchemy_engine().raw_connection()

    # MsSqlHook's autocommit handling calls pymssql's ``autocommit()`` method; other DB-API drivers
    # (psycopg, sqlite3) have an attribute, on the driver connection behind SQLAlchemy's proxy.
    def set_autocommit(self, conn, autocommit: bool) -> None:
        driver_conn = getattr(conn, "dbapi_connection", conn)
        if callable(getattr(driver_conn, "autocommit", None)):
            driver_conn.autocommit(autocommit)
        else:
            driver_conn.autocommit = autocommit

    def get_autocommit(self, conn) -> bool:
        driver_conn = getattr(conn, "dbapi_connection", conn)
        if hasattr(driver_conn, "autocommit_state"):
            return bool(driver_conn.autocommit_state)
        return bool(getattr(driver_conn, "autocommit", False))

    def test_connection(self) -> tuple[bool, str]:
        """Count ``TagRef``: proves address, credentials, database and that it is a historian, through
        the driver that reads History (mssql-python on SQL Server, unless the reader is ``dbapi``)."""
        conn_id = self.get_conn_id()
        try:
            where = describe_url(self.sqlalchemy_url)
            count = sa.select(sa.func.count()).select_from(self.historian.tagref)
            if self._url().get_backend_name() == "mssql" and self.reader == "arrow":
                from airflow_backfill_provider.historian.mssql_reader import scalar

                n = scalar(self._url(), count, tls_settings(self.connection.extra_dejson))
            else:
                with self.get_sqlalchemy_engine().connect() as conn:
                    n = conn.execute(count).scalar()
        except ConfigurationError as err:
            return False, untransient(str(err), conn_id)
        except Exception as err:
            return False, untransient(self._explain(err, "Connecting"), conn_id)
        message = f"Connected to {where}; TagRef holds {n} tags."
        warning = url_password_warning(self.connection.extra_dejson, self.connection.password)
        return True, f"{message} Warning: {warning}" if warning else message

    def _explain(self, err: BaseException, what: str) -> str:
        """``what`` failed: the cause in words, the source (password masked), and what to do."""
        problem = configuration_problem(err)
        words = problem or unreachable(err)
        cause = f"{words} ({driver_message(err)})" if words else driver_message(err)
        try:
            where = describe_url(self.sqlalchemy_url)
        except ConfigurationError:
            where = "an unusable URL"
        advice = (
            "Fix the connection's Login, Password or Database (or the database in its URL); "
            "retrying will not help."
            if problem
            else "Check that the source is reachable and holds TagRef and History."
        )
        return f"{what} failed on {where} (connection {self.get_conn_id()!r}): {cause}. {advice}"

    def call_with_retry(self, fn, what: str):
        """Call ``fn`` under this hook's retry policy and circuit breaker (transient errors only).

        A refused login, an unknown database or a missing permission is not retried: it becomes a
        :class:`ConfigurationError` saying what to fix (a task fails on it without retry).
        """
        try:
            return call_with_retry(
                fn,
                is_transient=is_transient_source_error,
                policy=self.retry_policy,
                breaker=self.breaker,
                what=what,
            )
        except ConfigurationError:
            raise
        except SourceUnavailableError as err:
            if err.__cause__ is None or not is_timeout(err.__cause__):
                raise
            timeout = extra_value(self.connection.extra_dejson, "timeout", None)
            limit = f"the connection's timeout of {timeout} s" if timeout else "the driver's timeout"
            raise SourceUnavailableError(
                f"{err} Each try timed out ({limit}): raise the connection extra 'timeout', or make "
                "chunks smaller (chunk_window, tag_group_size)."
            ) from err.__cause__
        except Exception as err:
            if configuration_problem(err) is None:
                raise
            raise ConfigurationError(self._explain(err, what)) from err

    # -- discovery ------------------------------------------------------------------------------

    def discover_tags(
        self,
        tag_types: Sequence[str] = DEFAULT_TAG_TYPES,
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        exclude_system: bool = True,
    ) -> list[str]:
        """Tag names from TagRef of the given types, ``Sys*`` excluded by default, glob-filtered."""
        stmt = self.historian.tags_query(tag_types, exclude_system=exclude_system)

        def run() -> list[str]:
            with self.get_sqlalchemy_engine().connect() as conn:
                return [row[0] for row in conn.execute(stmt)]

        return select_tags(self.call_with_retry(run, "Tag discovery"), include, exclude)

    # -- history --------------------------------------------------------------------------------

    def iter_history_batches(
        self,
        tags: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: str | Sequence[str] | None = None,
        **options: Any,
    ) -> Iterator[pa.RecordBatch]:
        """Stream History rows of ``tags`` in the window as Arrow batches of at most ``batch_size`` rows.

        Only ``columns`` are read (names, checked by
        :func:`~airflow_backfill_provider.historian.schema.history_columns`; default all 33). Batches
        follow :func:`~airflow_backfill_provider.historian.schema.arrow_history_schema` of those
        columns whichever reader runs. Memory is bounded by the batch size, not the window: the Arrow reader streams
        from the driver (PostgreSQL ``COPY``, SQLite statement steps); the DB-API reader uses a
        server-side cursor (``stream_results``). Neither retried nor guarded by the circuit breaker
        here (a stream cannot resume mid-way): callers run the whole window through
        :meth:`call_with_retry`, the one place that checks and updates the breaker.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be a positive number of rows, got {batch_size!r}.")
        selected = history_columns(columns)
        reader = self.reader
        if reader == "arrow":
            from airflow_backfill_provider.historian.readers import iter_arrow_batches

            yield from iter_arrow_batches(
                self._url(),
                self.historian,
                tags,
                start,
                end,
                batch_size=batch_size,
                streams=self.arrow_streams,
                columns=selected,
                tls=tls_settings(self.connection.extra_dejson),
                **options,
            )
        else:
            stmt = self.historian.history_query(tags, start, end, columns=selected, **options)
            schema = arrow_history_schema(selected)
            with self.get_sqlalchemy_engine().connect() as conn:
                result = conn.execution_options(stream_results=True, max_row_buffer=batch_size).execute(stmt)
                for rows in result.partitions(batch_size):
                    yield rows_to_batch(rows, schema)

    def count_rows(
        self, tags: Sequence[str], start: datetime, end: datetime, *, by_hour: bool = False, **options: Any
    ) -> dict:
        """Source rows per tag (``{tag: n}``), or per tag and hour (``{(tag, 'YYYY-MM-DD HH:00:00'): n}``)."""
        stmt = self.historian.count_query(tags, start, end, by_hour=by_hour, **options)

        def run() -> dict:
            with self.get_sqlalchemy_engine().connect() as conn:
                rows = conn.execute(stmt).all()
            if by_hour:
                return {(r[0], str(r[1])): int(r[2]) for r in rows}
            return {r[0]: int(r[1]) for r in rows}

        return self.call_with_retry(run, "History row count")
