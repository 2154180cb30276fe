"""The Arrow (ADBC) History reader against the DB-API reader, on real PostgreSQL and SQLite.

Both readers must give the same rows, the same types (the History Arrow schema) and therefore the
same spool, whatever the backend: hostile tag names are data, NULL Values are kept, the window is
half-open (and open at the start when asked).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from airflow_backfill_provider.historian.schema import arrow_history_schema
from airflow_backfill_provider.historian.transfer import spool_files, transfer_chunk
from airflow_backfill_provider.testing.simulator import HOSTILE_TAG_NAMES, SimulatorConfig, simulate

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
MIDNIGHT = T0 + timedelta(days=1)
CONFIG = SimulatorConfig(
    start=datetime(2025, 1, 1),
    end=datetime(2025, 1, 2, 3),
    tags=12,
    rate=120,
    seed=11,
    boundary_every=timedelta(days=1),
    hostile_tags=True,
)
KEY = [("TagName", "ascending"), ("DateTime", "ascending")]


@pytest.fixture(params=["postgresql", "sqlite"])
def historian(request, tmp_path, monkeypatch):
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'historian.db'}"
    simulate(url, CONFIG, replace=True)
    for reader in ("arrow", "dbapi"):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_WW_{reader.upper()}",
            json.dumps({"conn_type": "wonderware", "extra": {"sqlalchemy_url": url, "reader": reader}}),
        )
    return url


def hooks():
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    arrow, dbapi = WonderwareHook("ww_arrow"), WonderwareHook("ww_dbapi")
    assert (arrow.reader, dbapi.reader) == ("arrow", "dbapi")
    return arrow, dbapi


def url_hook(monkeypatch, conn_id: str, url: str, **extra):
    """A WonderwareHook on a connection ``conn_id`` pointing at ``url`` (extra settings added)."""
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "wonderware", "extra": {"sqlalchemy_url": url, **extra}}),
    )
    return WonderwareHook(conn_id)


def read(hook, tags, start, end, **kw) -> pa.Table:
    batches = list(hook.iter_history_batches(tags, start, end, **kw))
    assert all(b.schema.equals(arrow_history_schema(), check_metadata=True) for b in batches)
    return pa.Table.from_batches(batches, schema=arrow_history_schema())


def test_both_readers_give_identical_rows_and_types(historian):
    arrow, dbapi = hooks()
    tags = arrow.discover_tags()
    assert set(HOSTILE_TAG_NAMES) <= set(tags)
    a = read(arrow, tags, T0, MIDNIGHT, batch_size=500)
    d = read(dbapi, tags, T0, MIDNIGHT, batch_size=500)
    assert a.num_rows == d.num_rows == len(tags) * (720 + 1)  # 720 samples a day + the midnight row
    assert a.sort_by(KEY).equals(d.sort_by(KEY))
    assert a.column("DateTime").type == pa.timestamp("us", tz="UTC")
    per_tag = {
        t: n for t, n in zip(*a.group_by("TagName").aggregate([("TagName", "count")]).columns, strict=True)
    }
    assert {str(t): int(n.as_py()) for t, n in per_tag.items()} == {t: 721 for t in tags}
    nulls = a.filter(a.column("Value").is_null())
    assert nulls.num_rows > 0 and nulls.column("VValue").null_count < nulls.num_rows  # string tags kept


def test_hostile_tag_alone_is_just_a_tag(historian):
    arrow, dbapi = hooks()
    hostile = HOSTILE_TAG_NAMES[0]
    for hook in (arrow, dbapi):
        table = read(hook, [hostile], T0, MIDNIGHT, batch_size=10_000)
        assert table.num_rows == 721 and set(table.column("TagName").to_pylist()) == {hostile}
    # duplicated tags select each row once, as IN (...) does
    assert read(arrow, [hostile, hostile], T0, MIDNIGHT, batch_size=10_000).num_rows == 721


def test_half_open_window(historian):
    arrow, dbapi = hooks()
    tags = arrow.discover_tags()
    for hook in (arrow, dbapi):
        day = read(hook, tags, T0, MIDNIGHT, batch_size=1000)
        times = day.column("DateTime").to_pylist()
        assert min(times) == T0 and max(times) < MIDNIGHT  # the start row in, the end row out
        nxt = read(hook, tags, MIDNIGHT, MIDNIGHT + timedelta(hours=3), batch_size=1000)
        assert min(nxt.column("DateTime").to_pylist()) == MIDNIGHT  # the boundary row is the next window's


def test_batches_are_bounded_and_spools_identical(historian, tmp_path):
    arrow, dbapi = hooks()
    tags = arrow.discover_tags()
    spools = {}
    for name, hook in (("arrow", arrow), ("dbapi", dbapi)):
        batches = list(hook.iter_history_batches(tags, T0, MIDNIGHT, batch_size=777))
        assert batches and all(b.num_rows <= 777 for b in batches)
        directory = tmp_path / name
        directory.mkdir()
        paths, rows = spool_files(iter(batches), str(directory), arrow_history_schema(), rows_per_file=2000)
        assert len(paths) > 1
        spools[name] = pa.concat_tables(pa.ipc.open_stream(pa.OSFile(p)).read_all() for p in paths)
        assert spools[name].num_rows == rows
    assert spools["arrow"].schema.equals(spools["dbapi"].schema, check_metadata=True)
    assert spools["arrow"].sort_by(KEY).equals(spools["dbapi"].sort_by(KEY))


def test_empty_window_gives_no_rows(historian):
    arrow, dbapi = hooks()
    tags = arrow.discover_tags()
    later = T0 + timedelta(days=30)
    for hook in (arrow, dbapi):
        assert read(hook, tags, later, later + timedelta(days=1), batch_size=100).num_rows == 0


def clickhouse_rows(ch) -> pa.Table:
    with ch.session() as client:
        return client.query_arrow("SELECT * FROM WonderwareHistory ORDER BY TagName, DateTime")


@pytest.fixture
def ch(monkeypatch, chdb_path):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CH_ARROW", json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": chdb_path}})
    )
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    return ClickHouseBackfillHook("ch_arrow")


def test_transfer_is_exact_whichever_reader_and_write_path(historian, ch, tmp_path):
    arrow, dbapi = hooks()
    tags = arrow.discover_tags()
    results = {}
    for hook, staged in ((dbapi, False), (arrow, True), (dbapi, True), (arrow, False)):
        out = transfer_chunk(
            hook,
            ch,
            table="WonderwareHistory",
            tags=tags,
            start=T0,
            end=MIDNIGHT,
            batch_size=500,
            spool_rows=1500,
            retry=hook.call_with_retry,
            spool_dir=str(tmp_path),
        )
        assert out["staged"] is staged or staged is False  # the hook stages unless told otherwise
        results[(hook.reader, staged)] = clickhouse_rows(ch)
    first = results[("dbapi", False)]
    assert first.num_rows == len(tags) * 721
    assert all(t.equals(first) for t in results.values())  # re-runs replace, never duplicate


def test_staged_transfer_leaves_target_untouched_when_the_read_fails(historian, ch, tmp_path):
    from airflow_backfill_provider.exceptions import SourceUnavailableError

    arrow, _ = hooks()
    tags = arrow.discover_tags()
    transfer_chunk(
        arrow,
        ch,
        table="WonderwareHistory",
        tags=tags,
        start=T0,
        end=MIDNIGHT,
        batch_size=500,
        retry=arrow.call_with_retry,
        spool_dir=str(tmp_path),
    )
    before = clickhouse_rows(ch)

    class FailingMidStream:
        def iter_history_batches(self, *args, **kw):
            for i, batch in enumerate(arrow.iter_history_batches(*args, **kw)):
                if i == 3:
                    raise ConnectionError("injected: connection lost mid-stream")
                yield batch

    def retry_once(fn, what):
        try:
            return fn()
        except ConnectionError as err:
            raise SourceUnavailableError(f"{what} failed: {err}") from err

    with pytest.raises(SourceUnavailableError):
        transfer_chunk(
            FailingMidStream(),
            ch,
            table="WonderwareHistory",
            tags=tags,
            start=T0,
            end=MIDNIGHT,
            batch_size=500,
            spool_rows=600,
            retry=retry_once,
            spool_dir=str(tmp_path),
            staged=True,
        )
    assert clickhouse_rows(ch).equals(before)  # the window was never touched
    with ch.session() as client:
        leftovers = client.command("SELECT count() FROM system.tables WHERE name LIKE '_abp_stage_%'")
    assert int(leftovers) == 0
    assert list(tmp_path.glob("wonderware-chunk-*")) == []


def test_parallel_streams_read_the_same_rows(postgres_url, monkeypatch):
    simulate(postgres_url, CONFIG, replace=True)
    hook = url_hook(monkeypatch, "ww_streams", postgres_url, arrow_streams=3)
    assert hook.arrow_streams == 3
    tags = hook.discover_tags()
    parallel = read(hook, tags, T0, MIDNIGHT, batch_size=400)
    single = read(hook, tags[:1], T0, MIDNIGHT, batch_size=400)  # fewer tags than streams
    one = url_hook(monkeypatch, "ww_streams", postgres_url, arrow_streams=1)
    assert parallel.sort_by(KEY).equals(read(one, tags, T0, MIDNIGHT, batch_size=400).sort_by(KEY))
    assert single.num_rows == 721
    # a consumer that stops early leaves no thread or connection behind
    stream = hook.iter_history_batches(tags, T0, MIDNIGHT, batch_size=100)
    next(stream)
    stream.close()


# Values that a text round trip (PostgreSQL's CSV, SQLite's text timestamps) could bend: quoting,
# separators, line breaks, backslashes, the words NULL and \N, empty string vs NULL, padding,
# non-ASCII, control characters; floats that need all 17 digits, signed zero, NaN and infinities,
# subnormals; microsecond timestamps; extreme 64-bit integers.
HOSTILE_VALUES = [
    ("", 0.1 + 0.2, 0),
    (None, 1 / 3, -(2**63)),
    ("a,b;\"quoted\" 'single'", float("nan"), 2**63 - 1),
    ("line1\nline2\r\nline3\rend", float("inf"), 1),
    ("tab\there", float("-inf"), -1),
    ("back\\slash \\N \\\\", -0.0, 7),
    ("\\N", 5e-324, 8),
    ("NULL", 1.7976931348623157e308, 9),
    ("  padded  ", -2.2250738585072014e-308, 10),
    ("Ünïcödé °C 漢字 🙂", 123456789.123456789, 11),
    ("\x01\x02\x1f ctrl", 1e-7, 12),
]


def _insert_hostile_rows(url: str, tag: str, start: datetime) -> list[tuple]:
    """Add one row per HOSTILE_VALUES entry for ``tag``, a second apart at odd microseconds; return
    (DateTime, VValue, Value, Quality) as inserted."""
    import sqlalchemy as sa

    from airflow_backfill_provider.historian.queries import history_tables

    _, history = history_tables(sa.MetaData())
    rows = []
    for i, (text, value, quality) in enumerate(HOSTILE_VALUES):
        at = start.replace(tzinfo=None) + timedelta(seconds=i, microseconds=123457 + i)
        rows.append(
            {
                "DateTime": at,
                "TagName": tag,
                "Value": value,
                "VValue": text,
                "Quality": quality,
                "wwRetrievalMode": "Full",
                "wwVersion": "Latest",
                "wwTimeZone": "UTC",
                "wwUnit": text,
            }
        )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(history.insert(), rows)
    engine.dispose()
    return [(r["DateTime"].replace(tzinfo=UTC), r["VValue"], r["Value"], r["Quality"]) for r in rows]


def _same(a, b) -> bool:
    """Equal values, NaN equal to NaN and -0.0 told apart from 0.0 (== alone would do neither)."""
    import math

    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


def test_hostile_values_survive_every_reader_and_the_load(historian, ch, tmp_path):
    arrow, dbapi = hooks()
    tag = "Hostile.Values"
    start = T0 + timedelta(hours=5)
    expected = _insert_hostile_rows(historian, tag, start)
    if historian.startswith("sqlite"):  # what SQLite itself stores: NaN as NULL, -0.0 as 0.0
        expected = [(t, s, None if v != v else v + 0.0, q) for t, s, v, q in expected]
    end = start + timedelta(minutes=1)
    for hook in (arrow, dbapi):
        got = read(hook, [tag], start, end, batch_size=4).sort_by([("DateTime", "ascending")])
        rows = list(
            zip(*(got.column(c).to_pylist() for c in ("DateTime", "VValue", "Value", "Quality")), strict=True)
        )
        assert len(rows) == len(expected), hook.reader
        for have, want in zip(rows, expected, strict=True):
            assert all(_same(x, y) for x, y in zip(have, want, strict=True)), (hook.reader, have, want)
        assert got.column("wwUnit").to_pylist() == [v[0] for v in HOSTILE_VALUES]
    transfer_chunk(
        arrow,
        ch,
        table="WonderwareHistory",
        tags=[tag],
        start=start,
        end=end,
        batch_size=3,
        spool_rows=5,
        retry=arrow.call_with_retry,
        spool_dir=str(tmp_path),
    )
    with ch.session() as client:
        loaded = client.query(
            "SELECT DateTime, VValue, Value, Quality FROM WonderwareHistory ORDER BY DateTime"
        ).result_rows
    assert len(loaded) == len(expected)
    for (at, *have), want in zip(loaded, expected, strict=True):
        have = (at if at.tzinfo else at.replace(tzinfo=UTC), *have)  # the client returns UTC naive
        assert all(_same(x, y) for x, y in zip(have, want, strict=True)), (have, want)


def test_postgresql_reader_works_with_more_than_1024_open_files(postgres_url, monkeypatch):
    """A task process can hold many files; waiting on the socket must not be limited to fd < 1024."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    simulate(postgres_url, CONFIG, replace=True)
    hook = url_hook(monkeypatch, "ww_fds", postgres_url)
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert read(hook, [HOSTILE_TAG_NAMES[0]], T0, MIDNIGHT, batch_size=100).num_rows == 721
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_postgresql_reader_raises_the_servers_error_mid_stream_and_leaves_no_session(
    postgres_url, monkeypatch
):
    """An error the server raises after it sent rows ends the read with that error (typed, so the
    retry policy can judge it), and the reading session is gone afterwards."""
    import psycopg
    import sqlalchemy as sa

    from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES
    from airflow_backfill_provider.hooks.wonderware import is_transient_source_error

    simulate(postgres_url, CONFIG, replace=True)
    failing = """CASE WHEN "DateTime" > '2025-01-01 20:00' THEN 1 / 0 ELSE 1 END * "Value" AS "Value\""""
    columns = ", ".join(failing if c == "Value" else f'"{c}"' for c in HISTORY_COLUMN_NAMES)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:  # History becomes a view that fails on the rows after 20:00
        conn.execute(sa.text('ALTER TABLE "History" RENAME TO "HistoryBase"'))
        conn.execute(sa.text(f'CREATE VIEW "History" AS SELECT {columns} FROM "HistoryBase"'))
    hook = url_hook(monkeypatch, "ww_bad", postgres_url)
    with pytest.raises(psycopg.errors.DivisionByZero) as caught:
        for _ in hook.iter_history_batches(hook.discover_tags(), T0, MIDNIGHT, batch_size=500):
            pass
    assert not is_transient_source_error(caught.value)  # a data error: retrying cannot fix it
    # The server ends a backend shortly after its client closed: allow it a moment, and count only
    # this test's database (the throwaway server is shared by the session's tests). PostgreSQL
    # snapshots pg_stat_activity once per transaction, so each poll runs in a transaction of its own.
    deadline = time.monotonic() + 5
    with engine.connect() as conn:
        while True:
            sessions = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (%' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
            conn.rollback()
            if sessions == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    engine.dispose()
    assert sessions == 0
