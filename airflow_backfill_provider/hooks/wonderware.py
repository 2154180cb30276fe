"""AVEVA/Wonderware Historian (SQL Server) as a backfill source."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.planning import select_tags
from airflow_backfill_provider.historian.queries import Historian, rows_to_batch
from airflow_backfill_provider.historian.schema import DEFAULT_TAG_TYPES, arrow_history_schema
from airflow_backfill_provider.resilience import CircuitBreaker, RetryPolicy, call_with_retry

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import URL, Engine

DEFAULT_BATCH_SIZE = 50_000
# How History rows are read (connection extra ``reader``): "arrow" (columns built outside Python:
# PostgreSQL's COPY as CSV parsed by pyarrow, SQLite through ADBC), "dbapi" (SQLAlchemy over the
# DB-API driver, rows turned into columns in Python; pymssql on SQL Server), or "auto": Arrow where
# an Arrow reader for the backend is installed, else DB-API.
READERS = ("auto", "arrow", "dbapi")
# Connections the Arrow reader opens per chunk on PostgreSQL, each reading a share of the tags: the
# CSV is parsed outside the GIL, so streams can use several cores, at a few MB and one more source
# backend each; on 2 cores, where PostgreSQL needs one of them, it does not pay.
DEFAULT_ARROW_STREAMS = 1
# pymssql connect() options that may come from the connection's extra, forwarded in the URL query.
_PYMSSQL_OPTIONS = ("tds_version", "charset", "login_timeout", "timeout", "appname", "conn_properties")
# Messages of errors that retrying cannot fix, although some drivers raise them as OperationalError.
_PERMANENT_MARKERS = ("no such table", "no such column", "syntax error", "invalid object name", "permission")


def is_transient_source_error(err: BaseException) -> bool:
    """True for errors worth retrying: lost connections, timeouts, a server that is down or busy."""
    from sqlalchemy import exc

    text = str(err).lower()
    if any(marker in text for marker in _PERMANENT_MARKERS):
        return False
    if isinstance(err, exc.DBAPIError):
        return err.connection_invalidated or isinstance(err, (exc.OperationalError, exc.InterfaceError))
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    return type(err).__name__ in ("OperationalError", "InterfaceError")  # raw pymssql / psycopg


def connection_url(
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    schema: str | None,
    extra: dict,
) -> URL | str:
    """Map an Airflow connection's fields to the SQLAlchemy URL the hook connects with.

    ``extra["sqlalchemy_url"]`` wins (any database holding TagRef/History); otherwise SQL Server via
    pymssql from host/port/login/password/schema.
    """
    from sqlalchemy.engine import URL

    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    if not host:
        raise ConfigurationError(
            "The Wonderware connection has no host: set host (and port, login, password, schema) for "
            "SQL Server, or the extra 'sqlalchemy_url' for another database."
        )
    query = {k: str(extra[k]) for k in _PYMSSQL_OPTIONS if extra.get(k) is not None}
    return URL.create(
        "mssql+pymssql",
        username=login or None,
        password=password or None,
        host=host,
        port=int(port) if port else 1433,
        database=schema or "Runtime",
        query=query,
    )


def resolve_reader(requested: str | None, backend: str) -> str:
    """``"arrow"`` or ``"dbapi"`` for a requested reader (``auto`` when unset) and a SQLAlchemy backend."""
    from airflow_backfill_provider.historian.readers import ARROW_DRIVERS, arrow_driver_available

    reader = str(requested or "auto").strip().lower()
    if reader not in READERS:
        raise ConfigurationError(
            f"Invalid reader {requested!r} in the Wonderware connection: use one of {', '.join(READERS)}."
        )
    if reader == "dbapi":
        return reader
    available = arrow_driver_available(backend)
    if reader == "arrow" and not available:
        if backend not in ARROW_DRIVERS:
            raise ConfigurationError(
                f"reader 'arrow' is not available for {backend!r} (Arrow readers: "
                f"{', '.join(sorted(ARROW_DRIVERS))}); use reader 'dbapi' or 'auto'."
            )
        raise ConfigurationError(
            f"reader 'arrow' needs the Python package {ARROW_DRIVERS[backend].replace('_', '-')}: "
            "install it, or use reader 'dbapi' or 'auto'."
        )
    return "arrow" if available else "dbapi"


def retry_policy_from_extra(extra: dict) -> RetryPolicy:
    """The retry policy a connection's extra asks for; bad values are named in the error."""
    default = RetryPolicy()
    try:
        policy = RetryPolicy(
            attempts=int(extra.get("retry_attempts", default.attempts)),
            base_delay=float(extra.get("retry_base_delay", default.base_delay)),
            max_delay=float(extra.get("retry_max_delay", default.max_delay)),
        )
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"Invalid retry settings in the Wonderware connection extra: {err}") from err
    if policy.attempts < 1 or policy.base_delay < 0:
        raise ConfigurationError(
            f"retry_attempts must be >= 1 and retry_base_delay >= 0, got {policy.attempts} and "
            f"{policy.base_delay}."
        )
    return policy


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
            self._breaker = CircuitBreaker(
                failure_threshold=int(extra.get("breaker_threshold", 5)),
                reset_timeout=float(extra.get("breaker_reset_seconds", 60)),
            )
        return self._breaker

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {"hidden-fields": [], "relabeling": {"schema": "Database"}}

    @property
    def sqlalchemy_url(self) -> URL | str:  # type: ignore[override]
        conn = self.connection
        return connection_url(
            host=conn.host,
            port=conn.port,
            login=conn.login,
            password=conn.password,
            schema=conn.schema,
            extra=conn.extra_dejson,
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
        value = self.connection.extra_dejson.get("arrow_streams", DEFAULT_ARROW_STREAMS)
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
        try:
            with self.get_sqlalchemy_engine().connect() as conn:
                n = conn.execute(sa.select(sa.func.count()).select_from(self.historian.tagref)).scalar()
        except Exception as err:
            return False, f"{type(err).__name__}: {str(err).splitlines()[0]}"
        return True, f"Connected; TagRef holds {n} tags."

    def call_with_retry(self, fn, what: str):
        """Call ``fn`` under this hook's retry policy and circuit breaker (transient errors only)."""
        return call_with_retry(
            fn,
            is_transient=is_transient_source_error,
            policy=self.retry_policy,
            breaker=self.breaker,
            what=what,
        )

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
        **options: Any,
    ) -> Iterator[pa.RecordBatch]:
        """Stream History rows of ``tags`` in the window as Arrow batches of at most ``batch_size`` rows.

        Batches follow :func:`~airflow_backfill_provider.historian.schema.arrow_history_schema` whichever
        reader runs. Memory is bounded by the batch size, not the window: the Arrow reader streams
        from the driver (PostgreSQL ``COPY``, SQLite statement steps); the DB-API reader uses a
        server-side cursor (``stream_results``). Neither retried nor guarded by the circuit breaker
        here (a stream cannot resume mid-way): callers run the whole window through
        :meth:`call_with_retry`, the one place that checks and updates the breaker.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be a positive number of rows, got {batch_size!r}.")
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
                **options,
            )
        else:
            stmt = self.historian.history_query(tags, start, end, **options)
            schema = arrow_history_schema()
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
