"""Scale-out on the CeleryExecutor: one `airflow backfill create` spread over two Celery workers.

Real parts: the scheduler and the execution API, two `airflow celery worker` processes (different
`--celery-hostname`, two slots each) on a throwaway Redis broker, a PostgreSQL metadata database
(also Celery's result backend), the PostgreSQL historian. The target is a ClickHouse server that
all task processes of both workers write to at once: ClickHouse's HTTP interface in front of the
embedded engine (`tests/support/clickhouse_http.py`), the suite's one stand-in, reached through an
ordinary `clickhouse` connection with host, port, login and password.

The two workers share this machine, so each is given a host name of its own
(`testing.stack.worker_hostname`), which is what its task instances record, as on separate hosts.
"""

from __future__ import annotations

import os
import uuid
from datetime import date
from pathlib import Path

from airflow_backfill_provider.testing.counts import client_counts, source_days
from airflow_backfill_provider.testing.services import create_database, redis_server
from airflow_backfill_provider.testing.stack import AirflowStack, backfill_args, wonderware_backfill_env

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
DAG_ID = "wonderware_backfill"
JAN1, JAN2 = date(2025, 1, 1), date(2025, 1, 2)
WORKERS = ("worker-a", "worker-b")


def test_one_backfill_spreads_over_two_celery_workers_into_one_clickhouse(
    historian_server, postgres_server_url, clickhouse_server, tmp_path
):
    historian_url, _ = historian_server  # 2 days of 12 tags (+ Sys tags), midnight boundary rows
    metadata_url = create_database(postgres_server_url, f"airflow_{uuid.uuid4().hex[:8]}")
    with redis_server() as redis:
        broker_url = redis.url
        stack = AirflowStack(
            home=tmp_path / "airflow",
            dags_folder=DAGS_FOLDER,
            parallelism=4,
            executor="CeleryExecutor",
            metadata_url=metadata_url,
            broker_url=broker_url,
            celery_workers=WORKERS,
            worker_concurrency=2,
            extra_env=wonderware_backfill_env(historian_url, clickhouse_server.connection(), JAN1, JAN2),
        )
        stack.prepare(DAG_ID)
        # 12 tags in groups of 4, a day per chunk: each run fans out into three chunk tasks at once,
        # more than one worker takes (2 slots, Celery's prefetch of 1 per slot).
        conf = {"tag_group_size": 4, "chunk_window": "P1D"}
        stack.cli(*backfill_args(DAG_ID, JAN1, JAN2, max_active_runs=2, conf=conf))
        with stack.running():
            runs = stack.wait_for_runs(DAG_ID, expected=2, timeout=240)
    assert [r["state"] for r in runs] == ["success", "success"]
    assert [str(r["data_interval_start"])[:10] for r in runs] == ["2025-01-01", "2025-01-02"]

    with clickhouse_server.client() as client:
        landed = client_counts(client, by="day")
        duplicates = client.command("SELECT count() - uniqExact(TagName, DateTime) FROM WonderwareHistory")
    assert landed == source_days(historian_url) and duplicates == 0

    hosts = dict(
        stack.query(
            "SELECT hostname, count(*) FROM task_instance WHERE dag_id = :d AND state = 'success' "
            "GROUP BY hostname",
            d=DAG_ID,
        )
    )
    assert set(hosts) == set(WORKERS), hosts
    chunks = stack.query(
        "SELECT count(*), count(DISTINCT hostname) FROM task_instance WHERE dag_id = :d "
        "AND task_id = 'fetch_insert' AND state = 'success'",
        d=DAG_ID,
    )
    assert chunks == [(6, 2)], chunks  # the chunks themselves ran on both workers
