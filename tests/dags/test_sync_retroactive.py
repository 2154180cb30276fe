"""The sync's retroactive backfill with the real scheduler and api-server (issue 10).

A new tag appears in TagRef (its name full of glob characters) with history going back a day. The
next `wonderware_sync` run claims it from one hour back and asks Airflow's REST API, through an
ordinary http connection, for one `wonderware_backfill` run restricted to it by the exact-name
`tags` Param; the scheduler runs it, and the tag's history is exact in ClickHouse from the history
start on. Later sync runs ask for nothing more.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from airflow_backfill_provider.historian.queries import history_tables
from airflow_backfill_provider.testing.services import create_database
from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate
from airflow_backfill_provider.testing.stack import AirflowStack, ui_env

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
UTC = timezone.utc
NEW_TAG = "Line2.Speed [rpm]*?"
TABLE = "WonderwareHistory"


def wait(stack: AirflowStack, sql: str, until, timeout: float = 240, **params):
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        rows = stack.query(sql, **params)
        if until(rows):
            return rows
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sql} → {rows} after {timeout:.0f}s; see the logs in {stack.home}")
        time.sleep(1)


def xcom_value(raw):
    """An XCom row's value (JSON in the metadata DB)."""
    return json.loads(raw) if isinstance(raw, str | bytes) else raw


def finished_sync_runs(stack: AirflowStack) -> list[tuple]:
    return stack.query(
        "SELECT run_id, state FROM dag_run WHERE dag_id = 'wonderware_sync' AND state IN ('success', 'failed') "
        "ORDER BY end_date"
    )


def clickhouse_tag_rows(tag: str) -> Counter:
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    with ClickHouseBackfillHook("clickhouse_default").session() as client:  # under the embedded lock
        rows = client.query(
            f"SELECT DateTime, Value FROM {TABLE} WHERE TagName = {{t:String}}", parameters={"t": tag}
        ).result_rows
    return Counter((d.astimezone(UTC).replace(tzinfo=None), v) for d, v in rows)


def test_a_new_tag_gets_exactly_one_backfill_run_of_its_own_history(
    postgres_server_url, tmp_path, monkeypatch
):
    now = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    history_start = now - timedelta(days=1)
    url = create_database(postgres_server_url, "retroactive")
    simulate(url, SimulatorConfig(start=history_start - timedelta(hours=1), end=now + timedelta(hours=1),
                                  tags=3, rate=120, seed=11, sys_tags=0))  # fmt: skip
    engine = sa.create_engine(url)
    tagref, history = history_tables(sa.MetaData())
    connections = {
        "AIRFLOW_CONN_WONDERWARE_DEFAULT": json.dumps({"conn_type": "wonderware", "extra": {"sqlalchemy_dsn": url}}),
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": json.dumps({"conn_type": "chdb", "extra": {"chdb_path": str(tmp_path / "chdb")}}),
    }  # fmt: skip
    for name, value in connections.items():
        monkeypatch.setenv(name, value)
    stack = AirflowStack(home=tmp_path / "airflow", dags_folder=DAGS_FOLDER, apps="all", parallelism=4)
    stack.env.update(
        {
            **ui_env(),
            **connections,
            # the api-server of this very stack, with no credentials: GET /auth/token (all admins)
            "AIRFLOW_CONN_AIRFLOW_API_DEFAULT": json.dumps({"conn_type": "http", "host": stack.url}),
            "WONDERWARE_SYNC_RETROACTIVE": "on",
            "WONDERWARE_SYNC_HISTORY_START": history_start.isoformat() + "Z",
            "WONDERWARE_SYNC_TAG_CACHE_TTL": "0",  # no Redis here: the tag list is read every run
            "WONDERWARE_BACKFILL_RETRIES": "0",
        }
    )
    stack.prepare("wonderware_sync")
    stack.cli("dags", "unpause", "wonderware_backfill")
    with stack.running():
        wait(stack, "SELECT 1", lambda _: len(finished_sync_runs(stack)) >= 1)  # the tags are met
        assert all(state == "success" for _, state in finished_sync_runs(stack))

        with engine.begin() as conn:  # the plant adds a tag, with a day of history already stored
            conn.execute(tagref.insert(), [{"TagName": NEW_TAG, "TagType": 1}])
            minutes = int((now + timedelta(hours=1) - history_start).total_seconds() // 60)
            conn.execute(history.insert(), [
                {"TagName": NEW_TAG, "DateTime": history_start + timedelta(minutes=i), "Value": float(i)}
                for i in range(minutes)
            ])  # fmt: skip
        stack.cli("dags", "trigger", "wonderware_sync")
        runs = wait(
            stack,
            "SELECT run_id, state, conf FROM dag_run WHERE dag_id = 'wonderware_backfill' AND run_type = 'manual'",
            lambda rows: rows and rows[0][1] in ("success", "failed"),
            timeout=300,
        )
        (run_id, state, conf), *others = runs
        assert not others and state == "success", runs
        assert run_id.startswith("retroactive__tags__")
        conf = json.loads(conf) if isinstance(conf, str) else conf
        assert conf["tags"] == [NEW_TAG] and conf["range_start"].startswith(history_start.isoformat()[:16])

        # two more sync runs: the request is not repeated
        done = len(finished_sync_runs(stack))
        wait(stack, "SELECT 1", lambda _: len(finished_sync_runs(stack)) >= done + 2, timeout=200)
        assert all(state == "success" for _, state in finished_sync_runs(stack))
        backfill_runs = stack.query(
            "SELECT run_id FROM dag_run WHERE dag_id = 'wonderware_backfill' AND run_type = 'manual'"
        )
        assert backfill_runs == [(run_id,)]
        ((note,),) = stack.query(
            "SELECT n.content FROM dag_run r JOIN dag_run_note n ON n.dag_run_id = r.id WHERE r.run_id = :r",
            r=run_id,
        )
        assert note.startswith("Retroactive backfill of 1 new tags, asked for by wonderware_sync run ")

        # the tag's history is there from the history start, exactly, up to the sync's last read
        last = max(
            datetime.fromisoformat(xcom_value(v)["horizon"]).replace(tzinfo=None)
            for (v,) in stack.query(
                "SELECT value FROM xcom WHERE dag_id = 'wonderware_sync' AND task_id = 'sync' AND key = 'return_value'"
            )
        )
    with engine.connect() as conn:
        source = Counter(
            (d, v)
            for d, v in conn.execute(
                sa.select(history.c.DateTime, history.c.Value).where(
                    history.c.TagName == NEW_TAG,
                    history.c.DateTime >= history_start,
                    history.c.DateTime < last,
                )
            )
        )
    held = clickhouse_tag_rows(NEW_TAG)
    assert held == source and len(source) > 1400
    # and nothing of the other tags was reloaded: the run's plan held the new tag only
    (plan,) = stack.query(
        "SELECT value FROM xcom WHERE dag_id = 'wonderware_backfill' AND task_id = 'plan' AND key = 'return_value'"
    )[0]
    assert {t for chunk in xcom_value(plan) for t in chunk["tags"]} == {NEW_TAG}
