"""The sync's retroactive backfill with the real scheduler and api-server (issue 10).

New tag: a tag appears in TagRef (its name full of glob characters) with history going back a day.
The next `wonderware_sync` run claims it from one hour back and asks Airflow's REST API, through an
ordinary http connection, for one `wonderware_backfill` run restricted to it by the exact-name
`tags` Param; the scheduler runs it, and the tag's history is exact in ClickHouse from the history
start on. Later sync runs ask for nothing more.

New column: the deployment then adds `Quality` to WONDERWARE_HISTORY_COLUMNS. The next sync run
adds the column to the table and asks for a native backfill (`POST /api/v2/backfills`, reprocess
`completed`); the scheduler runs it, and the rows loaded before the column existed get its values.
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
from airflow_backfill_provider.historian.retroactive import COLUMN, request_id
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


def more_sync_runs(stack: AirflowStack, n: int) -> None:
    """Trigger ``n`` sync runs (rather than wait for the minute's) and wait until they have ended."""
    done = len(finished_sync_runs(stack))
    for _ in range(n):
        stack.cli("dags", "trigger", "wonderware_sync")
    wait(stack, "SELECT 1", lambda _: len(finished_sync_runs(stack)) >= done + n, timeout=200)


def clickhouse_tag_rows(tag: str) -> Counter:
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    with ClickHouseBackfillHook("clickhouse_default").session() as client:  # under the embedded lock
        rows = client.query(
            f"SELECT DateTime, Value FROM {TABLE} WHERE TagName = {{t:String}}", parameters={"t": tag}
        ).result_rows
    return Counter((d.astimezone(UTC).replace(tzinfo=None), v) for d, v in rows)


def start_stack(tmp_path: Path, metadata_url: str, env: dict[str, str]) -> AirflowStack:
    # PostgreSQL metadata: Airflow refuses to create a backfill on SQLite while the scheduler writes
    # ("Backfill creation is not supported on SQLite under concurrent access", HTTP 503)
    stack = AirflowStack(
        home=tmp_path / "airflow",
        dags_folder=DAGS_FOLDER,
        apps="all",
        parallelism=4,
        metadata_url=metadata_url,
    )
    # the api-server of this very stack, with no credentials: GET /auth/token (all admins)
    api = json.dumps({"conn_type": "http", "host": stack.url})
    stack.env.update({**ui_env(), **env, "AIRFLOW_CONN_AIRFLOW_API_DEFAULT": api})
    return stack


def clickhouse_columns() -> list[str]:
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    with ClickHouseBackfillHook("clickhouse_default").session() as client:
        return ClickHouseBackfillHook.table_columns(client, TABLE)


def clickhouse_quality(tag: str, before: datetime) -> dict:
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    with ClickHouseBackfillHook("clickhouse_default").session() as client:
        rows = client.query(
            f"SELECT DateTime, Quality FROM {TABLE} WHERE TagName = {{t:String}} AND DateTime < {{b:DateTime64(6, 'UTC')}}",
            parameters={"t": tag, "b": before},
        ).result_rows
    out = {d.astimezone(UTC).replace(tzinfo=None): q for d, q in rows}
    assert len(out) == len(rows)  # no duplicates
    return out


def test_new_tags_and_new_columns_are_backfilled_retroactively_through_airflow(
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
    env = {
        **connections,
        "WONDERWARE_SYNC_RETROACTIVE": "on",
        "WONDERWARE_SYNC_HISTORY_START": history_start.isoformat() + "Z",
        "WONDERWARE_SYNC_TAG_CACHE_TTL": "0",  # no Redis here: the tag list is read every run
        "WONDERWARE_BACKFILL_RETRIES": "0",
        "WONDERWARE_HISTORY_COLUMNS": "DateTime,TagName,Value",
    }
    metadata_url = create_database(postgres_server_url, "retroactive_airflow")
    stack = start_stack(tmp_path, metadata_url, env)
    stack.prepare("wonderware_sync")
    stack.cli("dags", "unpause", "wonderware_backfill")
    with stack.running():
        wait(stack, "SELECT 1", lambda _: len(finished_sync_runs(stack)) >= 1)  # the tags are met
        assert all(state == "success" for _, state in finished_sync_runs(stack))

        with engine.begin() as conn:  # the plant adds a tag, with a day of history already stored
            conn.execute(tagref.insert(), [{"TagName": NEW_TAG, "TagType": 1}])
            minutes = int((now + timedelta(hours=1) - history_start).total_seconds() // 60)
            conn.execute(history.insert(), [
                {"TagName": NEW_TAG, "DateTime": history_start + timedelta(minutes=i), "Value": float(i), "Quality": i % 7}
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

        more_sync_runs(stack, 2)  # the request is not repeated
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

    # -- a new column ---------------------------------------------------------------------------
    stack = start_stack(
        tmp_path, metadata_url, {**env, "WONDERWARE_HISTORY_COLUMNS": "DateTime,TagName,Value,Quality"}
    )
    stack.cli("dags", "reserialize")
    assert "Quality" not in clickhouse_columns()
    started = datetime.now(UTC).replace(tzinfo=None)
    with stack.running():
        stack.cli("dags", "trigger", "wonderware_sync")
        (backfill_id,) = wait(
            stack,
            "SELECT id FROM backfill WHERE dag_id = 'wonderware_backfill' AND completed_at IS NOT NULL",
            lambda rows: len(rows) == 1,
            timeout=600,
        )[0]
        request = request_id(COLUMN, ["Quality"])
        # ... and the interval in progress, by a manual run up to the sync's fence
        current = wait(
            stack,
            "SELECT state FROM dag_run WHERE run_id = :r",
            lambda rows: rows and rows[0][0] in ("success", "failed"),
            r=f"{request}__current",
        )
        assert current == [("success",)]
        runs = stack.query("SELECT state, conf FROM dag_run WHERE backfill_id = :b", b=backfill_id)
        assert runs and all(state == "success" for state, _ in runs), runs
        assert {xcom_value(conf)["retroactive_request"] for _, conf in runs} == {request}
        ((behavior, from_date),) = stack.query(
            "SELECT reprocess_behavior, from_date FROM backfill WHERE id = :b", b=backfill_id
        )
        # from the start of the daily interval that holds the history start
        assert behavior == "completed" and str(from_date).startswith(f"{history_start.date()} 00:00:00")
        more_sync_runs(stack, 1)  # the next sync run asks for nothing more
        assert stack.query("SELECT count(*) FROM backfill") == [(1,)]
    assert "Quality" in clickhouse_columns()
    # the new tag's rows, loaded before the column existed, now hold the source's Quality (below the
    # sync's fence, which the reload does not cross: rows above it are the sync's and keep theirs)
    below = started - timedelta(hours=2)
    with engine.connect() as conn:
        source = {d: q for d, q in conn.execute(
            sa.select(history.c.DateTime, history.c.Quality).where(
                history.c.TagName == NEW_TAG, history.c.DateTime >= history_start, history.c.DateTime < below))}  # fmt: skip
    held = clickhouse_quality(NEW_TAG, below)
    assert held == source and len(source) > 1300
