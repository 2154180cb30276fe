"""`wonderware_sync` under dag.test(): a PostgreSQL historian with rows up to now, embedded ClickHouse,
a throwaway Redis (stopped mid-test) and Airflow's StatsD backend pointed at a UDP socket the test
reads. Real parts throughout; each run's horizon is the wall clock, as in production.
"""

from __future__ import annotations

import json
import logging
import socket
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from airflow_backfill_provider.historian.queries import history_tables
from airflow_backfill_provider.historian.retroactive import KNOWN, TAG
from airflow_backfill_provider.testing.dag_runs import run_note, task_states, xcom
from airflow_backfill_provider.testing.services import create_database, redis_server
from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

UTC = timezone.utc
TABLE = "WonderwareHistory"


@pytest.fixture
def statsd_socket(monkeypatch):
    """A UDP socket that Airflow's StatsD backend sends to, initialized as a task process does."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk.observability.metrics import stats_utils

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(sock.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    # dag.test() runs tasks in this process; a task process initializes the backend the same way.
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    yield sock
    stats.initialize(factory=stats_utils.NoStatsLogger, export_legacy_names=False)
    sock.close()


def packets(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.extend(sock.recv(65536).decode().splitlines())
        except TimeoutError:
            return out


class Historian:
    """A simulated historian whose rows run from two hours ago to one hour ahead of the wall clock."""

    def __init__(self, url: str) -> None:
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        simulate(url, SimulatorConfig(start=now - timedelta(hours=2), end=now + timedelta(hours=1),
                                      tags=5, rate=10, seed=3, sys_tags=1, hostile_tags=True))  # fmt: skip
        self.engine = sa.create_engine(url)
        self.tagref, self.history = history_tables(sa.MetaData())

    def rows(self, start: datetime, end: datetime) -> Counter:
        h = self.history
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(h.c.TagName, h.c.DateTime, h.c.Value).where(
                    h.c.DateTime >= start.replace(tzinfo=None),
                    h.c.DateTime < end.replace(tzinfo=None),
                    h.c.TagName.not_like("Sys%"),
                )
            ).all()
        return Counter((t, d, v) for t, d, v in rows)

    def add_rows(self, rows: list[dict]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.history.insert(), rows)

    def add_tag(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.tagref.insert(), [{"TagName": name, "TagType": 1}])


def clickhouse_rows(chdb_path: str, start: datetime, end: datetime) -> Counter:
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    with ClickHouseBackfillHook("clickhouse_default").session() as client:
        rows = client.query(
            f"SELECT TagName, DateTime, Value FROM {TABLE} "
            "WHERE DateTime >= {s:DateTime64(6, 'UTC')} AND DateTime < {e:DateTime64(6, 'UTC')}",
            parameters={"s": start, "e": end},
        ).result_rows
        plain = int(client.command(f"SELECT count() FROM {TABLE}"))
    held = Counter((t, d.astimezone(UTC).replace(tzinfo=None), v) for t, d, v in rows)
    assert plain == sum(held.values())  # no duplicates, no FINAL needed: the table holds just these
    return held


def run_sync(dagbag):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=dagbag.dag_folder).get_dag("wonderware_sync")
    dr = dag.test()
    assert task_states(dr) == {"sync": "success", "retroactive": "success"}, task_states(dr)
    summary = xcom(dr, "sync")
    # The run's page says what it did (issue 17, item 12): rows, lag, where the tag list came from.
    note = run_note(dr)
    assert note.startswith(
        f"Synced {summary['rows_inserted']} new rows ({summary['rows_read']} read) of {summary['tags']} tags "
        f"up to {summary['horizon']}. Oldest tag's lag "
    ), note
    assert f"{summary['lag_after_seconds']:.1f} s ({summary['lag_after_tag']})" in note
    assert "tag list from " in note and "None" not in note
    return summary, xcom(dr, "retroactive")


def test_sync_runs_exact_with_redis_going_down_and_reports_metrics(
    dagbag, postgres_server_url, chdb_path, connections, monkeypatch, statsd_socket, caplog
):
    url = create_database(postgres_server_url, "sync_dag")
    plant = Historian(url)
    connections(source_url=url, chdb_path=chdb_path)
    with redis_server() as redis:
        monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis.url)

        first, met = run_sync(dagbag)
        start = datetime.fromisoformat(first["earliest_start"])
        horizon = datetime.fromisoformat(first["horizon"])
        # the first run starts one hour back (to the minute) and reads up to its horizon, exactly
        assert timedelta(minutes=60) <= horizon - start < timedelta(minutes=61)
        expected = plant.rows(start, horizon)
        assert first["rows_inserted"] == sum(expected.values()) > 1500
        assert clickhouse_rows(chdb_path, start, horizon + timedelta(hours=2)) == expected
        assert first["tag_cache"] == "miss" and first["first_run_tags"] == first["tags"] == 5
        assert met == {"new_tags": 0, "recorded": 5, "requests": [], "column_reloads": []}  # only records
        sent = packets(statsd_socket)
        assert f"airflow.wonderware_sync.rows_inserted:{first['rows_inserted']}|c" in sent
        assert any(
            p.startswith("airflow.wonderware_sync.lag_after_seconds:") and p.endswith("|g") for p in sent
        )
        assert any(p.startswith("airflow.wonderware_sync.duration:") and p.endswith("|ms") for p in sent)
        assert "airflow.wonderware_sync.tag_cache.miss:1|c" in sent

        second, _ = run_sync(dagbag)  # seconds later: the rows of those seconds, nothing twice
        h2 = datetime.fromisoformat(second["horizon"])
        assert second["tag_cache"] == "hit"
        assert clickhouse_rows(chdb_path, start, h2 + timedelta(hours=2)) == plant.rows(start, h2)
        assert second["rows_inserted"] == sum(plant.rows(horizon, h2).values())
        assert "airflow.wonderware_sync.tag_cache.hit:1|c" in packets(statsd_socket)

        # Redis goes down; a late row lands inside the lookback; a tag appears in TagRef
        redis.stop()
        tag = next(iter(expected))[0]
        late = {"TagName": tag, "DateTime": (h2 - timedelta(minutes=5, milliseconds=-1)).replace(tzinfo=None),
                "Value": 4242.5}  # fmt: skip
        plant.add_rows([late])
        plant.add_tag("Line2.Speed [rpm]*")
        plant.add_rows([{"TagName": "Line2.Speed [rpm]*", "DateTime": (h2 - timedelta(days=3)).replace(tzinfo=None),
                         "Value": 1.0}])  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            third, met = run_sync(dagbag)
        h3 = datetime.fromisoformat(third["horizon"])
        assert third["tag_cache"] == "unavailable"
        cache_warnings = [r for r in caplog.records if "Tag cache: Redis" in r.getMessage()]
        assert len(cache_warnings) == 1  # one warning, and the run goes on uncached
        assert clickhouse_rows(chdb_path, start, h3 + timedelta(hours=2)) == plant.rows(start, h3)
        assert (tag, late["DateTime"], 4242.5) in clickhouse_rows(chdb_path, start, h3)
        # the new tag is synced from one hour back, its older row is not loaded (the option is off) ...
        assert third["first_run_tags"] == 1 and met["new_tags"] == 1 and met["requests"] == []
        assert any("new tags ('Line2.Speed [rpm]*')" in r.getMessage() for r in caplog.records)
        # ... and recorded as met, so the next run does not report it again
        from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
        from airflow_backfill_provider.hooks.clickhouse_sync import ClickHouseSyncTarget

        known = ClickHouseSyncTarget(ClickHouseBackfillHook("clickhouse_default"), TABLE).known(TAG)
        assert known["Line2.Speed [rpm]*"].status == KNOWN and len(known) == 6

        redis.start()  # back, empty: a miss, then cached again
        fourth, met = run_sync(dagbag)
        assert fourth["tag_cache"] == "miss" and met["new_tags"] == 0
        h4 = datetime.fromisoformat(fourth["horizon"])
        assert clickhouse_rows(chdb_path, start, h4 + timedelta(hours=2)) == plant.rows(start, h4)
        assert json.loads(json.dumps(fourth)) == fourth  # the XCom summary is plain JSON
