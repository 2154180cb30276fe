"""`wonderware_backfill` and `wonderware_sync` against SQL Server's wire protocol and AVEVA's rules.

No SQL Server and no Historian can run here, so the source is the closest real thing: pymssql (the
provider's production driver) speaks TDS to the endpoint of ``tests/support/tds``, in front of the
Historian emulator of ``tests/support/aveva``, which answers History queries by AVEVA's documented
retrieval rules: an initial value at every query's start, Delta's dropped repeats, Full. What
ClickHouse must hold is read from the emulator's store of stored values, not through the provider.

The property under test is exactness as AVEVA users need it: each stored value once, no made-up
row, and the same content whatever the chunking, the interval size, or the DAG that loaded it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pendulum
import pytest

from airflow_backfill_provider.testing.dag_runs import task_states, xcom
from airflow_backfill_provider.testing.generation import SimulatorConfig
from tests.support.sqlserver import sqlserver_historian

UTC = timezone.utc
JAN1, JAN2, JAN3 = (datetime(2025, 1, d, tzinfo=UTC) for d in (1, 2, 3))
TABLE = "WonderwareHistory"


@pytest.fixture(scope="module")
def historian(tmp_path_factory):
    """Two days of 9 tags of every type (hostile names among them), slowly changing discrete and
    string tags (whose repeats Delta would drop), stored rows exactly on every midnight."""
    config = SimulatorConfig(
        start=datetime(2025, 1, 1),
        end=datetime(2025, 1, 3),
        tags=9,
        rate=240,
        seed=11,
        boundary_every=timedelta(days=1),
        hostile_tags=True,
    )
    with sqlserver_historian(tmp_path_factory.mktemp("sqlserver"), config) as sqlserver:
        yield sqlserver


def point_at(monkeypatch, sqlserver, chdb_path, **extra) -> None:
    """The default connections: this SQL Server historian, and an embedded ClickHouse at ``chdb_path``."""
    monkeypatch.setenv("AIRFLOW_CONN_WONDERWARE_DEFAULT", sqlserver.connection_json(**extra))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": str(chdb_path)}}),
    )


@pytest.fixture
def connect(historian, monkeypatch):
    return lambda chdb_path, **extra: point_at(monkeypatch, historian, chdb_path, **extra)


def run(dagbag, dag_id: str, logical_date: datetime | None = None, **conf):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=dagbag.dag_folder).get_dag(dag_id)
    when = pendulum.instance(logical_date) if logical_date else None
    return dag.test(logical_date=when, run_conf=conf or None)


def backfill_range(dagbag, start: datetime, end: datetime, **conf):
    """A manual wonderware_backfill run over an explicit range, asserted successful."""
    dr = run(dagbag, "wonderware_backfill", range_start=start.isoformat(), range_end=end.isoformat(), **conf)
    assert dr.state == "success", task_states(dr)
    return dr


def expected(historian, start: datetime, end: datetime) -> list[tuple]:
    """The stored values of the window (non-system tags), straight from the emulator's store."""
    lo, hi = start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None)
    return [r for r in historian.store.stored() if lo <= r[1] < hi and not r[0].startswith("Sys")]


def loaded(chdb_path) -> list[tuple]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    try:
        rows = client.query(
            f"SELECT TagName, DateTime, Value, VValue, Quality, QualityDetail FROM {TABLE} ORDER BY TagName, DateTime"
        ).result_rows
    finally:
        client.close()
    return [(t, d.astimezone(UTC).replace(tzinfo=None), v, vv, q, qd) for t, d, v, vv, q, qd in rows]


@pytest.mark.parametrize("reader", ["arrow", "dbapi"])  # mssql-python's Arrow fetch, pymssql
def test_backfill_over_the_wire_holds_each_stored_value_once_whatever_the_chunking(
    dagbag, historian, connect, tmp_path, reader
):
    made_up_before = historian.emulator.synthetic_rows
    historian.server.requests.clear()
    contents = {}
    for name, conf in {
        "6 tags x 8 h": {"tag_group_size": 6, "chunk_window": "PT8H"},
        "4 tags x 5 h": {"tag_group_size": 4, "chunk_window": "PT5H"},
        "all tags x 1 day": {"tag_group_size": 2000, "chunk_window": "P1D"},
    }.items():
        connect(tmp_path / name, reader=reader)
        dr = run(dagbag, "wonderware_backfill", JAN2, **conf)  # a manual run covers [JAN1, JAN2)
        assert dr.state == "success", task_states(dr)
        contents[name] = loaded(tmp_path / name)
    want = expected(historian, JAN1, JAN2)
    assert len(want) > 2000
    for name, content in contents.items():
        assert content == want, name
    # the Historian made initial values at chunk starts (so the rule was in play) and none landed
    assert historian.emulator.synthetic_rows > made_up_before
    assert not any(q == 133 or qd == 65536 for *_, q, qd in contents["4 tags x 5 h"])
    midnight = [r for r in want if r[1] == datetime(2025, 1, 1)]
    assert len(midnight) == 9  # a stored row exactly on the boundary, once per tag
    assert {q.mode for q in historian.emulator.history_queries} == {"Full"}
    # History came as RPC sp_prepexec with typed parameters (mssql-python) or as a batch with the
    # values in the text (pymssql)
    kinds = {r.kind for r in historian.server.requests if "FROM [History]" in r.sql}
    assert kinds == {"arrow": {"rpc:sp_prepexec"}, "dbapi": {"batch"}}[reader]


def test_one_interval_holds_what_many_intervals_hold(dagbag, historian, connect, tmp_path):
    connect(tmp_path / "daily")
    for day in (JAN2, JAN3):
        dr = run(dagbag, "wonderware_backfill", day, tag_group_size=5, chunk_window="PT7H")
        assert dr.state == "success", task_states(dr)
    connect(tmp_path / "range")
    backfill_range(dagbag, JAN1, JAN3, tag_group_size=3, chunk_window="PT13H")
    assert loaded(tmp_path / "daily") == loaded(tmp_path / "range") == expected(historian, JAN1, JAN3)


@pytest.fixture
def live_historian(tmp_path):
    """A historian whose rows run from two hours ago to one hour ahead of the wall clock."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    config = SimulatorConfig(
        start=now - timedelta(hours=2), end=now + timedelta(hours=1), tags=5, rate=20, seed=3, sys_tags=1
    )
    with sqlserver_historian(tmp_path / "live", config) as sqlserver:
        yield sqlserver


def test_sync_and_backfill_load_the_same_rows_over_the_same_hours(
    dagbag, live_historian, monkeypatch, tmp_path
):
    point_at(monkeypatch, live_historian, tmp_path / "sync")
    summaries = []
    for _ in range(3):  # three runs, each from a new start (its lookback): each would add made-up rows
        dr = run(dagbag, "wonderware_sync")
        assert task_states(dr)["sync"] == "success", task_states(dr)
        summaries.append(xcom(dr, "sync"))
    start = datetime.fromisoformat(summaries[0]["earliest_start"])
    horizon = datetime.fromisoformat(summaries[-1]["horizon"])
    synced = loaded(tmp_path / "sync")
    assert synced == expected(live_historian, start, horizon) and len(synced) > 500

    point_at(monkeypatch, live_historian, tmp_path / "backfill")
    backfill_range(dagbag, start, horizon, tag_group_size=2, chunk_window="PT17M")
    assert loaded(tmp_path / "backfill") == synced
