"""WonderwareHook against real PostgreSQL and SQLite historians made by the simulator."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from airflow_backfill_provider.testing.simulator import HOSTILE_TAG_NAMES, SimulatorConfig, simulate

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
CONFIG = SimulatorConfig(
    start=datetime(2025, 1, 1),
    end=datetime(2025, 1, 2, 6),
    tags=9,
    rate=300,
    seed=3,
    boundary_every=timedelta(days=1),
    hostile_tags=True,
)


@pytest.fixture(params=["postgresql", "sqlite"])
def historian(request, tmp_path, monkeypatch):
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'historian.db'}"
    simulate(url, CONFIG, replace=True)
    monkeypatch.setenv(
        "AIRFLOW_CONN_WW_TEST", json.dumps({"conn_type": "wonderware", "extra": {"sqlalchemy_url": url}})
    )
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    return WonderwareHook("ww_test"), url


def raw_counts(url, start, end, *, by_hour=False):
    """Counted in Python over every History row read with plain SQL: independent of the hook's
    query, and of how each database compares a bound instant with its stored DateTime."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text('SELECT "TagName", "DateTime" FROM "History" WHERE "TagName" NOT LIKE \'Sys%\'')
        ).all()
    engine.dispose()
    lo, hi = start.replace(tzinfo=None), end.replace(tzinfo=None)
    counts: dict = {}
    for tag, ts in rows:
        if isinstance(ts, str):  # SQLite keeps DateTime as text
            ts = datetime.fromisoformat(ts)
        if not lo <= ts < hi:
            continue
        key = (tag, ts.strftime("%Y-%m-%d %H:00:00")) if by_hour else tag
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_discover_tags_types_system_and_globs(historian):
    hook, _ = historian
    everything = hook.discover_tags()
    assert len(everything) == 9 and not any(t.startswith("Sys") for t in everything)
    assert set(HOSTILE_TAG_NAMES) <= set(everything)
    with_sys = hook.discover_tags(exclude_system=False)
    assert {t for t in with_sys if t.startswith("Sys")} and len(with_sys) > len(everything)
    analog = hook.discover_tags(["analog"])
    discrete_string = hook.discover_tags(["discrete", "string"])
    assert sorted(analog + discrete_string) == everything
    assert hook.discover_tags(include=["o'brien*"]) == [HOSTILE_TAG_NAMES[0]]
    assert HOSTILE_TAG_NAMES[0] not in hook.discover_tags(exclude=["O'Brien*"])


def test_counts_per_tag_and_hour_match_raw_sql(historian):
    hook, url = historian
    tags = hook.discover_tags()
    end = T0 + timedelta(days=1, hours=6)
    assert hook.count_rows(tags, T0, end) == raw_counts(url, T0, end)
    assert hook.count_rows(tags, T0, end, by_hour=True) == raw_counts(url, T0, end, by_hour=True)


def test_stream_batches_half_open(historian):
    hook, url = historian
    tags = hook.discover_tags()
    midnight = T0 + timedelta(days=1)
    batches = list(hook.iter_history_batches(tags, T0, midnight, batch_size=100))
    assert all(b.num_rows <= 100 for b in batches)
    rows = sum(b.num_rows for b in batches)
    assert rows == sum(raw_counts(url, T0, midnight).values())
    times = [t for b in batches for t in b.column("DateTime").to_pylist()]
    assert min(times) == T0 and max(times) < midnight  # the start row in, the end row out
    # one stored row per tag exactly at the start: in this window, and not in the one before
    assert sum(t == T0 for t in times) == len(tags)
    before = [b for b in hook.iter_history_batches(tags, T0 - timedelta(hours=1), T0)]
    assert T0 not in [t for b in before for t in b.column("DateTime").to_pylist()]
    values = [v for b in batches for v in b.column("Value").to_pylist()]
    assert None in values  # NULL Values (string tags, bad quality) are kept


def test_missing_table_is_not_retried(tmp_path, monkeypatch):
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_WW_EMPTY", json.dumps({"conn_type": "wonderware", "extra": {"sqlalchemy_url": url}})
    )
    hook = WonderwareHook("ww_empty")
    with pytest.raises(sa.exc.OperationalError, match="no such table: TagRef"):
        hook.discover_tags()
    ok, message = hook.test_connection()
    assert not ok and "no such table" in message


# -- credentials in the credential fields; configuration errors are not retried ------------------

PG_PASSWORD = "pg-s3cret:/pw"


@pytest.fixture(scope="module")
def password_historian():
    """A simulated historian on a PostgreSQL that wants a password (scram-sha-256 over TCP); its URL
    without the password."""
    from sqlalchemy.engine import URL, make_url

    from airflow_backfill_provider.testing.services import create_database, postgres_server

    with postgres_server(password=PG_PASSWORD) as server:
        url = create_database(server, "historian_pw")
        simulate(url, CONFIG, replace=True)
        u = make_url(url)  # URL.set(password=None) would keep the password: None means "unchanged"
        yield URL.create(u.drivername, u.username, None, u.host, u.port, u.database).render_as_string(
            hide_password=False
        )


def ww(monkeypatch, conn_id, url, **fields):
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    extra = {"sqlalchemy_dsn": url, "retry_attempts": 4, "retry_base_delay": 5}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "wonderware", **fields, "extra": extra})
    )
    return WonderwareHook(conn_id)


def test_password_field_is_used_with_a_url(password_historian, monkeypatch, capsys):
    assert PG_PASSWORD not in password_historian
    hook = ww(monkeypatch, "ww_fields", password_historian, login="postgres", password=PG_PASSWORD)
    assert len(hook.discover_tags()) == 9
    ok, message = hook.test_connection()
    assert ok and "TagRef holds" in message and "***" in message and PG_PASSWORD not in message
    assert "Warning" not in message and "password inside" not in capsys.readouterr().out
    # Without the field, the server's refusal says what is missing, at once.
    ok, message = ww(monkeypatch, "ww_nopw", password_historian).test_connection()
    assert not ok and "the server asks for a password and the connection has none" in message
    assert "retrying will not help" in message


def test_a_password_inside_the_url_works_and_is_warned_about(password_historian, monkeypatch, capsys):
    from sqlalchemy.engine import make_url

    inside = make_url(password_historian).set(password=PG_PASSWORD).render_as_string(hide_password=False)
    hook = ww(monkeypatch, "ww_inside", inside)
    assert len(hook.discover_tags()) == 9
    logged = capsys.readouterr().out  # Airflow's log handler writes to stdout
    assert "'sqlalchemy_dsn' holds a URL with a password inside" in logged
    assert "set it in the Password field" in logged and PG_PASSWORD not in logged
    ok, message = hook.test_connection()
    assert ok and "Warning:" in message and "Password field" in message and PG_PASSWORD not in message


@pytest.mark.parametrize(
    "fields, database, words",
    [
        ({"login": "postgres", "password": "wrong-canary-pw"}, None, "refused the password of 'postgres'"),
        ({"login": "nobody", "password": PG_PASSWORD}, None, "refused the password of 'nobody'"),
        (
            {"login": "postgres", "password": PG_PASSWORD},
            "no_such_db",
            "the database 'no_such_db' does not exist",
        ),
    ],
)
def test_wrong_credentials_or_database_fail_at_once_in_words(
    password_historian, monkeypatch, fields, database, words
):
    """Refused at the first attempt (retries here would wait 5 s, 10 s, 20 s), as a configuration
    error that names the connection and the fields to fix, never the password."""
    import time

    from sqlalchemy.engine import make_url

    from airflow_backfill_provider.exceptions import ConfigurationError

    url = password_historian
    if database:
        url = make_url(url).set(database=database).render_as_string(hide_password=False)
    hook = ww(monkeypatch, "ww_bad", url, **fields)
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as err:
        hook.discover_tags()
    assert time.monotonic() - started < 4, "a configuration error was retried"
    message = str(err.value)
    assert words in message and "'ww_bad'" in message and "retrying will not help" in message
    assert "Tag discovery failed" in message and "Login, Password or Database" in message
    assert "wrong-canary-pw" not in message and PG_PASSWORD not in message
    with pytest.raises(ConfigurationError, match=words):
        hook.count_rows(["T"], T0, T0 + timedelta(hours=1))
    ok, tested = hook.test_connection()
    assert not ok and words in tested and "wrong-canary-pw" not in tested


def test_sqlite_file_that_cannot_be_opened_is_a_configuration_error(tmp_path, monkeypatch):
    from airflow_backfill_provider.exceptions import ConfigurationError

    hook = ww(monkeypatch, "ww_nodir", f"sqlite:///{tmp_path}/missing-dir/historian.db")
    with pytest.raises(ConfigurationError, match="the SQLite file cannot be opened") as err:
        hook.discover_tags()
    assert "missing-dir/historian.db" in str(err.value)
