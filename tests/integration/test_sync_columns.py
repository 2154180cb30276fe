"""The sync's detection of new History columns, against a real embedded ClickHouse (chdb).

A column is new when the sync has not met it, whichever DAG added it to the table first: a
`wonderware_backfill` chunk adds the selected columns itself, and the reload must still be asked for.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from airflow_backfill_provider.historian.retroactive import COLUMN, KNOWN, PENDING, request_id
from airflow_backfill_provider.settings import WonderwareSyncSettings
from airflow_backfill_provider.tasks.wonderware_sync import add_columns, retroactive_columns

TABLE = "WonderwareHistory"
FIRST = ("DateTime", "TagName", "Value")
MORE = ("DateTime", "TagName", "Value", "Quality")


def settings(columns, retroactive=True) -> WonderwareSyncSettings:
    return WonderwareSyncSettings(
        table=TABLE,
        history_columns=columns,
        retroactive=retroactive,
        history_start=datetime(2025, 1, 1, tzinfo=timezone.utc),
    )


def target(chdb_path, monkeypatch):
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
    from airflow_backfill_provider.hooks.clickhouse_sync import ClickHouseSyncTarget

    monkeypatch.setenv(
        "AIRFLOW_CONN_CH_COLS", json.dumps({"conn_type": "chdb", "extra": {"chdb_path": chdb_path}})
    )
    return ClickHouseSyncTarget(ClickHouseBackfillHook("ch_cols"), TABLE)


def test_a_column_added_by_the_backfill_first_is_still_new_to_the_sync(chdb_path, monkeypatch, caplog):
    sync = target(chdb_path, monkeypatch)
    assert add_columns(sync, settings(FIRST)) == []  # creates the table with just these, all met
    assert sync.hook.missing_columns(TABLE, MORE) == ["Quality"]
    assert {n: k.status for n, k in sync.known(COLUMN).items()} == dict.fromkeys(FIRST, KNOWN)

    assert sync.hook.add_missing_columns(TABLE, MORE) == ["Quality"]  # a backfill chunk got there first
    assert add_columns(sync, settings(MORE)) == ["Quality"]
    known = sync.known(COLUMN)
    assert known["Quality"].status == PENDING and known["Quality"].request == request_id(COLUMN, ["Quality"])
    assert add_columns(sync, settings(MORE)) == []  # met now: asked for once

    # without the API (option turned off since) the request waits, saying so
    assert retroactive_columns(sync, settings(MORE, retroactive=False), None) == []
    assert "left pending: the option is off" in caplog.text
    assert sync.known(COLUMN)["Quality"].status == PENDING


def test_the_first_time_a_column_the_table_lacks_is_new_and_added(chdb_path, monkeypatch):
    sync = target(chdb_path, monkeypatch)
    sync.hook.ensure_history_columns(TABLE, FIRST)  # loaded by the backfill before the sync ever ran
    assert add_columns(sync, settings(MORE, retroactive=False)) == ["Quality"]
    assert sync.hook.missing_columns(TABLE, MORE) == []
    assert {n: k.status for n, k in sync.known(COLUMN).items()} == dict.fromkeys(MORE, KNOWN)  # option off
