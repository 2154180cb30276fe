"""The History column selection end to end: real PostgreSQL and SQLite historians, embedded ClickHouse.

A subset of the columns loads into a new table that has just those columns; a column added to the
selection is added to the table (``add_missing_columns``, or by the backfill operator itself) and a
reload of a window fills it over the rows already there, with the counts still exact. Rows are
compared with the source as multisets, so a lost row, a duplicate and a wrong value all fail.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES
from airflow_backfill_provider.testing.simulator import SimulatorConfig
from tests.support import plant as support
from tests.support.plant import TABLE

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
CONFIG = SimulatorConfig(
    start=T0.replace(tzinfo=None),
    end=(T0 + 2 * HOUR).replace(tzinfo=None),
    tags=6,
    rate=30,
    seed=3,
    sys_tags=0,
    hostile_tags=True,
)


class Plant(support.Plant):
    """The shared plant, with an embedded ClickHouse, loading through the backfill operator."""

    def __init__(self, url: str, chdb_path: str, monkeypatch) -> None:
        super().__init__(url, {"conn_type": "chdb", "extra": {"chdb_path": chdb_path}}, CONFIG, monkeypatch)

    def load(self, start: datetime, end: datetime, columns, **kw) -> dict:
        from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator

        return WonderwareToClickHouseOperator(
            task_id="load",
            tags=self.tags,
            window_start=start.isoformat(),
            window_end=end.isoformat(),
            table=TABLE,
            wonderware_conn_id=self.wonderware_conn_id,
            clickhouse_conn_id=self.clickhouse_conn_id,
            batch_size=200,
            columns=columns,
            **kw,
        ).execute({})

    def columns(self) -> list[str]:
        with self.ch.session() as client:
            return self.ch.table_columns(client, TABLE)

    def types(self, table: str = TABLE) -> dict[str, str]:
        with self.ch.session() as client:
            return {r[0]: r[1] for r in client.query(f"DESCRIBE TABLE {table}").result_rows}


@pytest.fixture(params=["postgresql", "sqlite"])
def plant(request, tmp_path, chdb_path, monkeypatch):
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path}/h.db"
    )
    p = Plant(url, chdb_path, monkeypatch)
    yield p
    p.close()


@pytest.fixture
def sqlite_plant(tmp_path, chdb_path, monkeypatch):
    p = Plant(f"sqlite:///{tmp_path}/h.db", chdb_path, monkeypatch)
    yield p
    p.close()


def test_a_subset_loads_then_an_added_column_is_filled_by_a_reload(plant):
    p, end = plant, T0 + 2 * HOUR
    first = ["DateTime", "TagName", "Value"]
    out = p.load(T0, end, "Value,TagName,DateTime")
    assert "added_columns" not in out
    # a new table gets just the selected columns, and the source's rows exactly
    assert p.columns() == first
    assert p.clickhouse_rows(T0, end, first) == p.source_rows(T0, end, first)
    total = out["rows"]
    assert total == sum(p.source_rows(T0, end, first).values()) > 0

    # VValue joins the selection: the primitive adds exactly it, in schema order, typed as the DDL would
    second = [*first, "VValue"]
    assert p.ch.missing_columns(TABLE, second) == ["VValue"]
    assert p.ch.add_missing_columns(TABLE, second) == ["VValue"]
    assert p.columns() == second
    assert p.ch.add_missing_columns(TABLE, second) == [] and p.ch.missing_columns(TABLE, second) == []
    assert int(p.command(f"SELECT countIf(VValue IS NOT NULL) FROM {TABLE}")) == 0  # until reloaded

    # wwUnit too, this time added by the backfill itself before its load; reload the first hour
    third = [*second, "wwUnit"]
    out = p.load(T0, T0 + HOUR, ",".join(third))
    assert out["added_columns"] == ["wwUnit"]
    assert p.columns() == third
    full = ddl_types(p)
    assert p.types() == {c: full[c] for c in third}
    # the reloaded hour holds the source's values in the new columns; the rest awaits its reload
    assert p.clickhouse_rows(T0, T0 + HOUR, third) == p.source_rows(T0, T0 + HOUR, third)
    assert (
        int(
            p.command(
                f"SELECT countIf(VValue IS NOT NULL) FROM {TABLE} WHERE DateTime < '2025-01-01 01:00:00'"
            )
        )
        > 0
    )
    later = p.clickhouse_rows(T0 + HOUR, end, third)
    assert {(r[3], r[4]) for r in later} == {(None, None)}
    assert p.clickhouse_rows(T0 + HOUR, end, first) == p.source_rows(T0 + HOUR, end, first)
    # exact: a plain count equals the source's, no duplicates from the reload
    assert int(p.command(f"SELECT count() FROM {TABLE}")) == total
    assert (
        int(p.command(f"SELECT count() FROM (SELECT TagName, DateTime FROM {TABLE} GROUP BY 1, 2)")) == total
    )

    # reloading the rest fills the whole history
    p.load(T0 + HOUR, end, third)
    assert p.clickhouse_rows(T0, end, third) == p.source_rows(T0, end, third)
    assert int(p.command(f"SELECT count() FROM {TABLE}")) == total


def ddl_types(p: Plant) -> dict[str, str]:
    """The types a table created with all 33 columns has."""
    with p.ch.session() as client:
        p.ch.ensure_history_table(client, "AllColumns")
    return p.types("AllColumns")


def test_a_33_column_table_takes_a_subset_load_the_other_columns_null(sqlite_plant, tmp_path):
    from airflow_backfill_provider.historian.transfer import transfer_chunk

    p, end = sqlite_plant, T0 + 2 * HOUR
    p.load(T0, end, None)
    assert p.columns() == list(HISTORY_COLUMN_NAMES)
    everything = list(HISTORY_COLUMN_NAMES)
    total = sum(p.source_rows(T0, end, ["TagName"]).values())
    assert p.clickhouse_rows(T0, end, everything) == p.source_rows(T0, end, everything)

    subset = ["DateTime", "TagName", "Value", "Quality"]
    source = p.source
    # the staged path (the operator's) and the plain replace_window path, one hour each
    p.load(T0, T0 + HOUR, ",".join(subset))
    transfer_chunk(
        source,
        p.ch,
        table=TABLE,
        tags=p.tags,
        start=T0 + HOUR,
        end=end,
        batch_size=200,
        retry=source.call_with_retry,
        spool_dir=str(tmp_path),
        staged=False,
        columns=subset,
    )
    assert p.columns() == everything  # nothing dropped
    assert p.clickhouse_rows(T0, end, subset) == p.source_rows(T0, end, subset)
    assert int(p.command(f"SELECT count() FROM {TABLE}")) == total
    assert int(p.command(f"SELECT countIf(VValue IS NOT NULL OR wwUnit IS NOT NULL) FROM {TABLE}")) == 0


def test_the_sync_appends_a_subset_into_a_table_with_more_columns(sqlite_plant):
    from airflow_backfill_provider.historian.sync_transfer import sync_once
    from airflow_backfill_provider.hooks.clickhouse_sync import ClickHouseSyncTarget

    p, horizon = sqlite_plant, T0 + 2 * HOUR
    wide = ["DateTime", "TagName", "Value", "VValue"]
    assert p.ch.ensure_history_columns(TABLE, wide) == []  # created with just these
    assert p.columns() == wide
    source = p.source
    run = sync_once(
        source,
        ClickHouseSyncTarget(p.ch, TABLE),
        tags=p.tags,
        horizon=horizon,
        retry=source.call_with_retry,
        table=TABLE,
        columns=["DateTime", "TagName", "Value"],
    )
    start = horizon - HOUR  # the first run's default offset
    narrow = ["DateTime", "TagName", "Value"]
    assert run["rows_inserted"] == sum(p.source_rows(start, horizon, narrow).values()) > 0
    assert p.clickhouse_rows(start, horizon, narrow) == p.source_rows(start, horizon, narrow)
    assert int(p.command(f"SELECT countIf(VValue IS NOT NULL) FROM {TABLE}")) == 0


def test_the_primitive_refuses_a_missing_table_an_unknown_column_and_a_foreign_table(chdb_path, monkeypatch):
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_CH_COLS", json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": chdb_path}})
    )
    ch = ClickHouseBackfillHook("ch_cols")
    for call in (ch.add_missing_columns, ch.missing_columns):
        with pytest.raises(
            ConfigurationError, match=r"The ClickHouse table 'NoSuchTable' does not exist in embedded chdb"
        ):
            call("NoSuchTable", ["DateTime", "TagName", "Value"])
    assert ch.ensure_history_columns("H", "DateTime,TagName") == []
    with pytest.raises(ConfigurationError, match=r"'Valeu' \(did you mean 'Value'\?\)"):
        ch.add_missing_columns("H", ["DateTime", "TagName", "Valeu"])
    with ch.session() as client:
        client.command("CREATE TABLE Other (id UInt8) ENGINE = Memory")
        assert ch.table_columns(client, "H") == ["DateTime", "TagName"]  # nothing was added
    with pytest.raises(
        ConfigurationError, match="'Other' .* has no column DateTime, TagName: it is not a History table"
    ):
        ch.add_missing_columns("Other", ["DateTime", "TagName"])
    # the default selection is all 33, added in schema order
    assert ch.add_missing_columns("H") == list(HISTORY_COLUMN_NAMES[2:])
    with ch.session() as client:
        assert ch.table_columns(client, "H") == list(HISTORY_COLUMN_NAMES)


def test_every_reader_reads_just_the_selected_columns(plant, monkeypatch):
    import pyarrow as pa

    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    p, end = plant, T0 + 2 * HOUR
    url = str(p.engine.url.render_as_string(hide_password=False))
    readers = {"dbapi": {"reader": "dbapi"}, "arrow": {"reader": "arrow"}}
    if p.engine.dialect.name == "postgresql":
        readers["arrow, 2 streams"] = {"reader": "arrow", "arrow_streams": 2}
    subset = ["DateTime", "TagName", "VValue", "wwUnit"]
    key = [("TagName", "ascending"), ("DateTime", "ascending")]
    tables = {}
    for i, (name, extra) in enumerate(readers.items()):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_WW_R{i}",
            json.dumps({"conn_type": "wonderware", "extra": {"sqlalchemy_url": url, **extra}}),
        )
        batches = list(
            WonderwareHook(f"ww_r{i}").iter_history_batches(p.tags, T0, end, batch_size=100, columns=subset)
        )
        assert batches and all(b.schema.names == subset for b in batches), name
        tables[name] = pa.Table.from_batches(batches).sort_by(key)
    first = tables["dbapi"]
    assert all(t.equals(first) for t in tables.values())
    held = Counter(
        tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in row.values())
        for row in first.to_pylist()
    )
    assert held == p.source_rows(T0, end, subset)
