"""The minute-level sync against real historians (PostgreSQL, SQLite) and ClickHouse in both of the
hook's modes: embedded, and a server (ClickHouse's HTTP interface over the embedded engine,
``tests/support/clickhouse_http.py``, the one stand-in: no ClickHouse server can run here).

Each test drives runs with explicit horizons (a run's read instant) over a simulated history, and
compares ClickHouse with the source row by row: ``(TagName, DateTime, Value, VValue)`` as a multiset,
so a lost row and a duplicate both fail. Late rows are inserted into the source between runs.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from airflow_backfill_provider.exceptions import ReconciliationError
from airflow_backfill_provider.historian.queries import history_tables
from airflow_backfill_provider.historian.sync import CLAIMED, DONE, SyncOptions
from airflow_backfill_provider.historian.sync_transfer import sync_once
from airflow_backfill_provider.testing.simulator import SimulatorConfig
from tests.support import plant as support
from tests.support.plant import TABLE

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
CONFIG = SimulatorConfig(
    start=T0.replace(tzinfo=None),
    end=(T0 + timedelta(hours=3)).replace(tzinfo=None),
    tags=6,
    rate=20,
    seed=5,
    sys_tags=1,
    hostile_tags=True,
)


class Plant(support.Plant):
    """The shared plant, with the sync target and the source changes the sync must catch."""

    def __init__(self, url: str, clickhouse_conn: dict, monkeypatch) -> None:
        from airflow_backfill_provider.hooks.clickhouse_sync import ClickHouseSyncTarget

        super().__init__(url, clickhouse_conn, CONFIG, monkeypatch)
        self.target = ClickHouseSyncTarget(self.ch, TABLE)

    def sync(self, horizon: datetime, source=None, *, batch_size: int = 500, **kw) -> dict:
        return sync_once(
            source or self.source,
            self.target,
            tags=self.tags,
            horizon=horizon,
            retry=self.source.call_with_retry,
            table=TABLE,
            batch_size=batch_size,
            **kw,
        )

    def add_source_rows(self, rows: list[tuple[str, datetime, float]]) -> None:
        """Rows that reach the historian late (store-and-forward): old timestamps, written now."""
        _, history = history_tables(sa.MetaData())
        with self.engine.begin() as conn:
            conn.execute(
                history.insert(),
                [{"TagName": t, "DateTime": d.replace(tzinfo=None), "Value": v} for t, d, v in rows],
            )

    def delete_source_rows(self, tag: str, start: datetime) -> list[tuple[str, datetime, float]]:
        """Take ``tag``'s rows from ``start`` on out of the source; return them to add back later."""
        _, history = history_tables(sa.MetaData())
        where = sa.and_(history.c.TagName == tag, history.c.DateTime >= start.replace(tzinfo=None))
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(history.c.TagName, history.c.DateTime, history.c.Value).where(where)
            )
            taken = [(t, d.replace(tzinfo=UTC), v) for t, d, v in rows]
            conn.execute(history.delete().where(where))
        return taken


@pytest.fixture
def pg_plant(postgres_url, clickhouse_conn, monkeypatch):
    """A PostgreSQL historian, and ClickHouse embedded and as a server (each test runs in both)."""
    plant = Plant(postgres_url, clickhouse_conn, monkeypatch)
    yield plant
    plant.close()


@pytest.fixture(params=["postgresql", "sqlite"])
def plant(request, tmp_path, chdb_path, monkeypatch):
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path}/h.db"
    )
    plant = Plant(url, {"conn_type": "chdb", "extra": {"chdb_path": chdb_path}}, monkeypatch)
    yield plant
    plant.close()


def test_new_rows_appear_and_a_run_without_new_data_inserts_nothing(plant):
    h1 = T0 + timedelta(hours=2)
    first = plant.sync(h1)
    # the first run starts the default hour back; older history is left to the backfill
    assert first["first_run_tags"] == len(plant.tags) == first["tags"] and first["groups"] == 1
    loaded = plant.assert_exact(h1 - timedelta(hours=1), h1)
    assert first["rows_inserted"] == first["rows_read"] == loaded == plant.plain_count() > 0
    # nothing before the first window, nothing at or after the horizon (those rows wait)
    assert sum(plant.source_rows(h1, h1 + MIN).values()) > 0
    assert (
        plant.clickhouse_rows(T0, h1 - timedelta(hours=1)) == plant.clickhouse_rows(h1, h1 + MIN) == Counter()
    )

    h2 = h1 + MIN
    second = plant.sync(h2)
    new = sum(plant.source_rows(h1, h2).values())
    assert new > 0 and second["rows_inserted"] == new
    assert second["rows_read"] > new  # the lookback is read again and skipped
    assert plant.assert_exact(h1 - timedelta(hours=1), h2) == plant.plain_count() == loaded + new

    # the same minute again, then a later minute with nothing new at the source
    assert plant.sync(h2)["rows_inserted"] == 0
    assert plant.plain_count() == loaded + new
    state = plant.target.read_state(plant.tags)
    assert {s.status for s in state.values()} == {DONE}
    assert {s.watermark for s in state.values()} == {h2}
    assert all(s.last_seen is not None and h1 <= s.last_seen < h2 for s in state.values())


def test_late_rows_inside_the_lookback_are_captured_older_ones_by_a_backfill_reprocess(pg_plant):
    from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator

    p = pg_plant
    h1, h2 = T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=1)
    p.sync(h1)
    p.sync(h2)
    tag = p.tags[0]
    inside = (tag, h2 - 5 * MIN + timedelta(milliseconds=7), 4242.0)  # 5 minutes late
    older = (tag, h2 - 30 * MIN + timedelta(milliseconds=7), 4343.0)  # 30 minutes late
    p.add_source_rows([inside, older])
    h3 = h2 + MIN
    run = p.sync(h3)
    held = p.clickhouse_rows(T0, h3)
    assert sum(1 for r in held if r[2] == 4242.0) == 1
    assert not any(r[2] == 4343.0 for r in held)  # older than the lookback: the sync never sees it
    assert run["rows_inserted"] == sum(p.source_rows(h2, h3).values()) + 1

    # wonderware_backfill reprocessing that hour finds it; the fence keeps it below the sync's claims
    WonderwareToClickHouseOperator(
        task_id="reprocess",
        tags=p.tags,
        window_start=(T0 + timedelta(hours=1)).isoformat(),
        window_end=(T0 + timedelta(hours=2)).isoformat(),
        wonderware_conn_id=Plant.wonderware_conn_id,
        clickhouse_conn_id=Plant.clickhouse_conn_id,
    ).execute({})
    p.assert_exact(T0 + timedelta(hours=1), h3)
    assert sum(1 for r in p.clickhouse_rows(T0, h3) if r[2] == 4343.0) == 1


@pytest.mark.parametrize("max_tag_lag", ["1h", "1s"])
def test_a_tag_that_lags_the_others_loses_nothing(pg_plant, max_tag_lag):
    """Its rows reach the historian 30 minutes late, while the other tags are current. With a lag
    allowance (the default hour) its window follows its own newest row; with none (``1s``: a pure
    read-horizon watermark, as with the seed's one global watermark) its rows fall behind the lookback."""
    p = pg_plant
    options = SyncOptions(max_tag_lag=max_tag_lag)
    lagging = p.tags[-1]
    h = T0 + timedelta(hours=2)
    pending = p.delete_source_rows(lagging, h - 30 * MIN)
    p.sync(h, options=options)
    for _ in range(4):  # each minute, the next minute of the lagging tag arrives, 30 minutes old
        h += MIN
        due = [r for r in pending if r[1] < h - 29 * MIN]
        pending = [r for r in pending if r[1] >= h - 29 * MIN]
        p.add_source_rows(due)
        summary = p.sync(h, options=options)
    # the lag the docs say to alert on is the oldest tag's: the lagging one, 30 minutes back or more
    assert summary["lag_after_tag"] == lagging
    assert summary["lag_after_seconds"] >= 29 * 60
    assert summary["freshest_lag_after_seconds"] < 5 * 60
    first = T0 + timedelta(hours=1)  # the first run's window start
    source, held = p.source_rows(first, h), p.clickhouse_rows(T0, h)
    missing = source - held
    if max_tag_lag == "1h":
        assert held == source and sum(source.values()) > 0
    else:
        assert missing and {r[0] for r in missing} == {lagging}
        assert not held - source


def test_a_run_that_dies_half_way_is_completed_by_the_next_without_duplicates(pg_plant):
    p = pg_plant
    h1 = T0 + timedelta(hours=2)
    p.sync(h1)

    class FailingSource:
        """The real source, failing part-way through its second batch with a non-retried error."""

        def iter_history_batches(self, *args, **kwargs):
            for n, batch in enumerate(p.source.iter_history_batches(*args, **kwargs)):
                if n == 1:
                    raise RuntimeError("connection reset mid-read")
                yield batch

    h2 = h1 + 3 * MIN
    with pytest.raises(RuntimeError, match="connection reset mid-read"):
        p.sync(h2, source=FailingSource(), batch_size=50)
    state = p.target.read_state(p.tags)
    assert {s.status for s in state.values()} == {CLAIMED}
    assert {s.watermark for s in state.values()} == {h1}  # the previous watermark is kept
    p.assert_exact(h1 - timedelta(hours=1), h1)  # nothing of the failed run was written
    assert p.clickhouse_rows(h1, h2) == Counter()
    again = p.sync(h2)
    assert again["rows_inserted"] == sum(p.source_rows(h1, h2).values())
    p.assert_exact(h1 - timedelta(hours=1), h2)
    assert p.plain_count() == sum(p.source_rows(h1 - timedelta(hours=1), h2).values())


class PausedSource:
    """The real source, pausing after the first batch of its read until released."""

    def __init__(self, source) -> None:
        self.source = source
        self.reading = threading.Event()
        self.release = threading.Event()

    def call_with_retry(self, fn, what):
        return self.source.call_with_retry(fn, what)

    def iter_history_batches(self, *args, **kwargs):
        for n, batch in enumerate(self.source.iter_history_batches(*args, **kwargs)):
            yield batch
            if n == 0:
                self.reading.set()
                assert self.release.wait(60), "the test never released the backfill's read"


@pytest.mark.parametrize("fence", [True, False], ids=["fenced", "without-fence"])
def test_a_sync_and_a_backfill_of_the_same_window_interleaved(pg_plant, monkeypatch, fence):
    """A backfill chunk of the last three hours starts reading; meanwhile late rows reach the source
    and a sync run appends them; then the chunk commits. With the fence the chunk stops below the
    sync's claims and the result is exact; without it, its commit deletes the sync's late rows."""
    from airflow_backfill_provider.hooks import clickhouse_sync
    from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator

    p = pg_plant
    h1, h2 = T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=1)
    p.sync(h1)
    p.sync(h2)
    if not fence:
        monkeypatch.setattr(clickhouse_sync, "read_fence", lambda *a, **k: None)
    paused = PausedSource(p.source)
    op = WonderwareToClickHouseOperator(
        task_id="backfill",
        tags=p.tags,
        window_start=T0.isoformat(),
        window_end=h2.isoformat(),
        wonderware_conn_id=Plant.wonderware_conn_id,
        clickhouse_conn_id=Plant.clickhouse_conn_id,
        batch_size=200,
    )
    monkeypatch.setattr(op, "_source_hook", lambda: paused)
    outcome: dict = {}

    def backfill():
        try:
            outcome["result"] = op.execute({})
        except BaseException as err:  # reported to the test thread
            outcome["error"] = err

    thread = threading.Thread(target=backfill)
    thread.start()
    try:
        assert paused.reading.wait(60), "the backfill never started reading"
        late = [(t, h2 - 4 * MIN + timedelta(milliseconds=i + 1), 5000.0 + i) for i, t in enumerate(p.tags)]
        p.add_source_rows(late)
        h3 = h2 + MIN
        run = p.sync(h3)
        assert run["rows_inserted"] == sum(p.source_rows(h2, h3).values()) + len(late)
    finally:
        paused.release.set()
        thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["rows"] > 0
    source, held = p.source_rows(T0, h3), p.clickhouse_rows(T0, h3)
    late_keys = Counter((t, d.replace(tzinfo=None), v, None) for t, d, v in late)
    if fence:
        assert held == source and p.plain_count() == sum(source.values())
    else:
        assert source - held == late_keys  # exactly the sync's late rows are gone
        assert not held - source


def test_a_window_that_holds_rows_the_source_lacks_is_reported(pg_plant):
    p = pg_plant
    h1 = T0 + timedelta(hours=2)
    p.sync(h1)
    stray = h1 - 2 * MIN + timedelta(microseconds=3)
    with p.ch.session() as client:
        client.command(
            f"INSERT INTO {TABLE} (DateTime, TagName, Value) VALUES "
            "({d:DateTime64(6, 'UTC')}, {t:String}, 1.0)",
            parameters={"d": stray, "t": p.tags[1]},
        )
    h2 = h1 + MIN
    with pytest.raises(ReconciliationError) as err:
        p.sync(h2)
    message = str(err.value)
    assert (
        f"{p.tags[1]!r}: " in message and "held vs" in message and "wonderware_backfill reprocess" in message
    )
    # the rows the source has were appended, and the state advanced: the sync is not stuck
    state = p.target.read_state(p.tags)
    assert {s.status for s in state.values()} == {DONE} and {s.watermark for s in state.values()} == {h2}
    assert sum((p.source_rows(h1 - timedelta(hours=1), h2) - p.clickhouse_rows(T0, h2)).values()) == 0
    lenient = p.sync(h2 + MIN, strict=False)
    assert lenient["mismatched_windows"] == 1
    (window,) = lenient["mismatches"]
    ((tag, (held, source)),) = window["tags"].items()
    assert tag == p.tags[1] and held == source + 1


def test_the_append_reads_the_window_not_the_table(pg_plant):
    """A history table with a million older rows; the append runs under a read limit far below it."""
    from airflow_backfill_provider.hooks.clickhouse_sync import ClickHouseSyncTarget

    p = pg_plant
    p.sync(T0 + timedelta(hours=2))
    with p.ch.session() as client:
        client.command(
            f"INSERT INTO {TABLE} (DateTime, TagName, Value) SELECT "
            "toDateTime64('2024-01-01 00:00:00', 6, 'UTC') + number * 10, "
            f"arrayElement({{tags:Array(String)}}, 1 + number % {len(p.tags)}), number FROM numbers(1000000)",
            parameters={"tags": p.tags},
        )
    guard = {"max_rows_to_read": 100_000, "read_overflow_mode": "throw"}
    p.target = ClickHouseSyncTarget(p.ch, TABLE, append_settings=guard)
    run = p.sync(T0 + timedelta(hours=2, minutes=1))
    assert run["rows_inserted"] > 0
    p.assert_exact(T0 + timedelta(hours=1), T0 + timedelta(hours=2, minutes=1))
    # the guard is real: the same INSERT without the window's filter in the subquery is refused
    with p.ch.session() as client, pytest.raises(Exception, match="max_rows_to_read|TOO_MANY_ROWS"):
        client.command(
            f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE (TagName, DateTime) NOT IN "
            f"(SELECT TagName, DateTime FROM {TABLE})",
            settings=guard,
        )


def test_the_fence_is_only_there_once_the_sync_has_claimed(pg_plant):
    from airflow_backfill_provider.hooks.clickhouse_sync import read_fence

    p = pg_plant
    assert read_fence(p.ch, TABLE, p.tags) is None  # no state table yet
    p.sync(T0 + timedelta(hours=2))
    assert read_fence(p.ch, TABLE, p.tags) == T0 + timedelta(hours=1)
    assert read_fence(p.ch, TABLE, ["a tag the sync does not know"]) is None


def test_a_backfill_chunk_wholly_above_the_fence_writes_nothing(pg_plant, caplog, monkeypatch):
    from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator

    p = pg_plant
    h1 = T0 + timedelta(hours=2)
    p.sync(h1)
    with p.ch.session() as client:  # a row the chunk's delete would remove if it ran
        client.command(
            f"INSERT INTO {TABLE} (DateTime, TagName, Value) VALUES ({{d:DateTime64(6, 'UTC')}}, {{t:String}}, 1.0)",
            parameters={"d": h1 - 5 * MIN, "t": p.tags[0]},
        )
    before = p.plain_count()
    op = WonderwareToClickHouseOperator(
        task_id="above",
        tags=p.tags,
        window_start=(h1 - 30 * MIN).isoformat(),
        window_end=h1.isoformat(),
        wonderware_conn_id=Plant.wonderware_conn_id,
        clickhouse_conn_id=Plant.clickhouse_conn_id,
    )
    # a stdlib logger, so caplog sees the task's lines (the task logger writes past it)
    task_log = logging.getLogger("test_sync.operator")
    monkeypatch.setattr(WonderwareToClickHouseOperator, "log", property(lambda self: task_log))
    caplog.set_level(logging.INFO, logger="test_sync.operator")
    result = op.execute({})
    assert result["fenced"] is True and result["rows"] == 0
    assert p.plain_count() == before
    assert "lies at or above the minute-level sync's fence 2025-01-01T01:00:00+00:00" in caplog.text


def test_a_quiet_tag_held_at_its_first_claim_is_no_warning(pg_plant, caplog):
    """A tag with no recent rows starts, after its first run, at its first claim (first_run_offset
    back), later than max_tag_lag + lookback would reach: normal, logged as information; the run used
    to warn from its second run on that the lookback or lag allowance had grown."""
    p = pg_plant
    quiet = p.tags[0]
    h = T0 + timedelta(hours=2)
    p.delete_source_rows(quiet, T0)
    p.sync(h)
    with caplog.at_level(logging.INFO):
        summary = p.sync(h + MIN)
    assert summary["held_tags"] >= 1
    held = [r for r in caplog.records if "start at their previous claim" in r.getMessage()]
    assert held and all(r.levelno == logging.INFO for r in held)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "grew" in r.getMessage()]
