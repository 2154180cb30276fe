"""A Wonderware connection's fields as the SQLAlchemy URL, reader and retry policy of the hook.

Plain functions of the connection's fields (no Airflow connection, no database), so the mapping is
unit-tested alone; :mod:`airflow_backfill_provider.hooks.wonderware` re-exports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.resilience import RetryPolicy
from airflow_backfill_provider.utils import as_bool

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# How History rows are read (connection extra ``reader``): "arrow" (columns built outside Python:
# mssql-python's Arrow fetch on SQL Server, PostgreSQL's COPY as CSV parsed by pyarrow, SQLite
# through ADBC), "dbapi" (SQLAlchemy over the DB-API driver, rows turned into columns in Python;
# pymssql on SQL Server), or "auto": Arrow where an Arrow reader for the backend is installed, else
# DB-API.
READERS = ("auto", "arrow", "dbapi")
# The extra holding a SQLAlchemy URL instead of SQL Server. Its name contains "dsn", one of the
# names Airflow redacts, so the UI and the REST API show it as ***: a password left inside it never
# reaches a browser. The older name is still read, for connections made before.
URL_EXTRA = "sqlalchemy_dsn"
LEGACY_URL_EXTRA = "sqlalchemy_url"
# pymssql connect() options that may come from the connection's extra, forwarded in the URL query.
_PYMSSQL_OPTIONS = ("tds_version", "charset", "login_timeout", "timeout", "appname", "conn_properties")
# The extra ``encrypt`` (ODBC's words) as pymssql's ``encryption`` (FreeTDS's levels).
_PYMSSQL_ENCRYPTION = {"yes": "require", "strict": "strict", "no": "off"}


def tls_settings(extra: dict) -> dict:
    """``encrypt`` (``yes``/``no``/``strict``; None or ``auto``: the driver's default) and
    ``trust_server_certificate`` (bool, None: the driver's default) from a connection's extra;
    ``true``/``false`` are read as ``yes``/``no``."""
    encrypt = extra_value(extra, "encrypt", None)
    trust = extra_value(extra, "trust_server_certificate", None)
    if encrypt is not None and str(encrypt).strip().lower() == "auto":
        encrypt = None
    if encrypt is not None:
        word = str(encrypt).strip().lower()
        if word not in _PYMSSQL_ENCRYPTION:
            try:
                word = "yes" if as_bool(encrypt, "encrypt") else "no"
            except ConfigurationError as err:
                raise ConfigurationError(
                    f"The Wonderware connection's encrypt must be auto, yes, no or strict, got {encrypt!r}."
                ) from err
        encrypt = word
    if trust is not None:
        trust = as_bool(trust, "trust_server_certificate of the Wonderware connection")
    return {"encrypt": encrypt, "trust_server_certificate": trust}


def extra_value(extra: dict, key: str, default):
    """``extra[key]``, or ``default`` when it is missing or empty: a connection form stores an
    untouched field as null."""
    value = extra.get(key)
    return default if value is None or value == "" else value


def source_url_extra(extra: dict) -> tuple[str | None, str]:
    """The SQLAlchemy URL a connection's extra gives instead of SQL Server, and the key holding it."""
    for key in (URL_EXTRA, LEGACY_URL_EXTRA):
        if extra.get(key):
            return str(extra[key]).strip(), key
    return None, URL_EXTRA


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

    A URL in the extra (``sqlalchemy_dsn``, or the older ``sqlalchemy_url``) wins: any database
    holding TagRef/History. The connection's Login and Password fields fill in, and override, the
    URL's user and password, so the password never has to live in the extra. Otherwise SQL Server
    via pymssql from host/port/login/password/schema.
    """
    from sqlalchemy.engine import URL

    given, key = source_url_extra(extra)
    if given:
        if not (login or password):
            return given
        url = _parse(given, key)
        return url.set(username=login or url.username, password=password or url.password)
    if not host:
        raise ConfigurationError(
            "The Wonderware connection has no host: set host (and port, login, password, schema) for "
            f"SQL Server, or the extra {URL_EXTRA!r} for another database."
        )
    query = {k: str(extra[k]) for k in _PYMSSQL_OPTIONS if extra.get(k) is not None}
    encrypt = tls_settings(extra)["encrypt"]
    if encrypt is not None:
        query["encryption"] = _PYMSSQL_ENCRYPTION[encrypt]
    return URL.create(
        "mssql+pymssql",
        username=login or None,
        password=password or None,
        host=host,
        port=int(port) if port else 1433,
        database=schema or "Runtime",
        query=query,
    )


def url_password_warning(extra: dict, password: str | None) -> str | None:
    """A warning when the extra's URL carries a password of its own, saying where it should go."""
    given, key = source_url_extra(extra)
    if not given:
        return None
    if not _parse(given, key).password:
        return None
    instead = "the Password field's value is used instead" if password else "set it in the Password field"
    return (
        f"The Wonderware connection's extra {key!r} holds a URL with a password inside: {instead} "
        "and remove it from the URL. An extra is not encrypted, and the Airflow CLI's audit log "
        "keeps --conn-extra as typed; the Password field is encrypted and masked everywhere."
    )


def describe_url(url: URL | str) -> str:
    """The URL with its password masked: safe for logs and messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # sqlalchemy.exc.ArgumentError: not a URL, and it may hold a secret
        return "(a value that is not a SQLAlchemy URL)"


def _parse(given: str, key: str) -> URL:
    from sqlalchemy.engine import make_url

    try:
        return make_url(given)
    except Exception as err:  # sqlalchemy.exc.ArgumentError; never echo the value, it may hold a password
        raise ConfigurationError(
            f"The Wonderware connection extra {key!r} is not a SQLAlchemy URL: use e.g. "
            "postgresql+psycopg://historian.plant.local:5432/historian or sqlite:////data/historian.db."
        ) from err


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
            attempts=int(extra_value(extra, "retry_attempts", default.attempts)),
            base_delay=float(extra_value(extra, "retry_base_delay", default.base_delay)),
            max_delay=float(extra_value(extra, "retry_max_delay", default.max_delay)),
        )
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"Invalid retry settings in the Wonderware connection extra: {err}") from err
    if policy.attempts < 1 or policy.base_delay < 0:
        raise ConfigurationError(
            f"retry_attempts must be >= 1 and retry_base_delay >= 0, got {policy.attempts} and "
            f"{policy.base_delay}."
        )
    return policy
