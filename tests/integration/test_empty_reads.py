"""A chunk whose read finds no row never silently empties a window ClickHouse holds rows for.

A source table being reloaded (the compose stack's old `historian-init --replace`), a connection
pointing at the wrong database or a filter matching nothing all read as "no rows"; replacing the
window with nothing would lose history and report success. Real parts: a SQLite historian made by
the simulator, embedded ClickHouse (chdb), the transfer both staged and unstaged.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from airflow_backfill_provider.exceptions import EmptyReadError
from airflow_backfill_provider.historian.queries import history_tables
from airflow_backfill_provider.historian.transfer import transfer_chunk
from airflow_backfill_provider.testing.counts import clickhouse_counts
from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

UTC = timezone.utc
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 6, tzinfo=UTC)


@pytest.fixture
def plant(tmp_path, chdb_path, monkeypatch):
    """``(historian URL, WonderwareHook, ClickHouseBackfillHook)``: 6 hours of 3 tags, an empty table."""
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    url = f"sqlite:///{tmp_path}/historian.db"
    simulate(
        url, SimulatorConfig(start=START.replace(tzinfo=None), end=END.replace(tzinfo=None), tags=3, rate=300)
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_WONDERWARE_DEFAULT",
        json.dumps({"conn_type": "wonderware", "extra": {"sqlalchemy_dsn": url}}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": chdb_path}}),
    )
    target = ClickHouseBackfillHook()
    with target.session() as client:
        target.ensure_history_table(client, "WonderwareHistory")
    return url, WonderwareHook(), target


@pytest.mark.parametrize("staged", [True, False])
def test_an_empty_read_over_a_loaded_window_fails_and_keeps_the_rows(plant, chdb_path, staged):
    url, source, target = plant
    tags = source.discover_tags()

    def load(**kw):
        return transfer_chunk(source, target, table="WonderwareHistory", tags=tags, start=START, end=END,
                              batch_size=1000, retry=source.call_with_retry, staged=staged, **kw)  # fmt: skip

    assert load()["rows"] > 0
    loaded = clickhouse_counts(chdb_path)
    _, history = history_tables(sa.MetaData())
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the source's table is emptied, as a reload would for a moment
        conn.execute(history.delete())
    engine.dispose()

    with pytest.raises(EmptyReadError, match=r"holds \d+ rows there: nothing was replaced") as err:
        load()
    assert "allow_empty" in str(err.value)
    assert clickhouse_counts(chdb_path) == loaded  # the window keeps its rows

    result = load(allow_empty=True)  # said on purpose: the history was deleted at the source
    assert result["rows"] == 0 and result["replaced_rows"] == sum(loaded.values())
    assert clickhouse_counts(chdb_path) == {}


def test_an_empty_read_over_an_empty_window_is_no_error(plant):
    _, source, target = plant
    later = END + timedelta(days=1)
    result = transfer_chunk(source, target, table="WonderwareHistory", tags=source.discover_tags(), start=END,
                            end=later, batch_size=1000, retry=source.call_with_retry)  # fmt: skip
    assert result["rows"] == 0
