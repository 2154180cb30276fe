"""`make bench-scale`: how a native backfill's cost grows with the number of intervals, per executor.

For each executor (LocalExecutor; CeleryExecutor with two workers on a throwaway Redis) and each
number of daily intervals (default 30, 90 and 365), a real ``airflow backfill create`` of
``wonderware_backfill`` (scheduler + ``airflow api-server --apps execution``, PostgreSQL metadata
database, ``airflow_backfill_provider.testing.stack``) moves a small simulated PostgreSQL historian
into a ClickHouse server: ClickHouse's HTTP interface over the embedded engine
(``tests/support/clickhouse_http.py``, the tests' endpoint; hence ``python -m scripts.bench_scale``
from the repository root). Every case starts from a fresh metadata database and a fresh ClickHouse,
and its result is checked against the source (rows per day).

Columns:

* wall: from ``backfill create`` until the last run finished (includes the components' start-up);
* span: first task start to last task end; TI/s: task instances per second of span;
* chunk work: the sum of the transfers' own time (``seconds`` in each ``fetch_insert`` XCom: read,
  spool, insert, verify); slot-s: task slots × span, what the executor could have spent;
* overhead: the share of slot-s not spent on chunk work: task process start-up, the other three
  tasks of each run, scheduling and queueing latency, idle slots;
* queued→run s: mean seconds from a task instance's queuing to its start (the executor's hand-over
  and the task process's start); task s: mean task instance duration (all four tasks);
* rows/s/slot: rows moved per second of chunk work, one slot's throughput while it works.

The last line is one JSON object with every figure.

``--throughput`` measures instead what one slot moves per second when chunks are large: one chunk of
a day of ``--throughput-tags`` tags (~1M rows), moved as ``fetch_insert`` moves it
(``transfer_chunk`` from ``WonderwareHook`` to ``ClickHouseBackfillHook``), into embedded ClickHouse
and into the ClickHouse server endpoint, median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "wonderware_backfill"
START = datetime(2025, 1, 1)


def say(message: str = "") -> None:
    print(message, flush=True)  # noqa: T201 - a command-line script


def run_case(
    *, executor: str, days: int, historian_url: str, pg_url: str, broker_url: str, work: Path, args
) -> dict:
    from airflow_backfill_provider.testing.counts import client_counts, source_days
    from airflow_backfill_provider.testing.services import create_database
    from airflow_backfill_provider.testing.stack import AirflowStack, backfill_args, wonderware_backfill_env
    from tests.support.clickhouse_http import clickhouse_http_server

    first_day = START.date()
    last_day = first_day + timedelta(days=days - 1)
    case = work / f"{executor}-{days}"
    metadata_url = create_database(pg_url, f"airflow_{uuid.uuid4().hex[:8]}")
    celery = executor == "CeleryExecutor"
    slots = args.workers * args.worker_concurrency if celery else args.parallelism
    with clickhouse_http_server(case / "clickhouse") as endpoint:
        stack = AirflowStack(
            home=case / "airflow",
            dags_folder=ROOT / "dags",
            parallelism=slots,
            executor=executor,
            metadata_url=metadata_url,
            broker_url=broker_url,
            celery_workers=tuple(f"worker-{i + 1}" for i in range(args.workers)),
            worker_concurrency=args.worker_concurrency,
            extra_env=wonderware_backfill_env(historian_url, endpoint.connection(), first_day, last_day),
        )
        stack.prepare(DAG_ID)
        conf = {"tag_group_size": args.tags, "chunk_window": "P1D"}  # one chunk per interval
        t0 = time.monotonic()
        stack.cli(
            *backfill_args(DAG_ID, first_day, last_day, max_active_runs=args.max_active_runs, conf=conf)
        )
        with stack.running():
            runs = stack.wait_for_runs(DAG_ID, expected=days, timeout=args.timeout)
        wall = time.monotonic() - t0
        with endpoint.client() as client:
            landed = client_counts(client, by="day")
    expected = {
        d: n
        for d, n in source_days(historian_url).items()
        if first_day.isoformat() <= d <= last_day.isoformat()
    }
    tis = stack.query(
        "SELECT task_id, start_date, end_date, duration, hostname, queued_dttm FROM task_instance "
        "WHERE dag_id = :d",
        d=DAG_ID,
    )
    xcoms = stack.query(
        "SELECT value FROM xcom WHERE dag_id = :d AND task_id = 'fetch_insert' AND key = 'return_value'",
        d=DAG_ID,
    )
    chunk_seconds = rows = 0.0
    for (value,) in xcoms:
        result = json.loads(value) if isinstance(value, str) else value
        chunk_seconds += float(result.get("seconds", 0))
        rows += int(result.get("rows", 0))
    starts = [t[1] for t in tis if t[1]]
    ends = [t[2] for t in tis if t[2]]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else wall
    by_task: dict[str, float] = {}
    for task_id, _, _, duration, _, _ in tis:
        by_task[task_id] = by_task.get(task_id, 0.0) + float(duration or 0)
    # queued -> running: the executor's hand-over (LocalExecutor: a local queue; Celery: the broker,
    # a worker, its supervisor) and the task process's start until it reports running
    waits = [(t[1] - t[5]).total_seconds() for t in tis if t[1] and t[5]]
    slot_seconds = slots * span
    return {
        "executor": executor,
        "intervals": days,
        "failed_runs": sum(r["state"] != "success" for r in runs),
        "exact": landed == expected,
        "task_instances": len(tis),
        "hosts": sorted({t[4] for t in tis if t[4]}),
        "slots": slots,
        "rows": int(rows),
        "wall_seconds": round(wall, 1),
        "span_seconds": round(span, 1),
        "ti_per_second": round(len(tis) / span, 3) if span else None,
        "chunk_work_seconds": round(chunk_seconds, 1),
        "queued_to_running_seconds_mean": round(sum(waits) / len(waits), 2) if waits else None,
        "task_seconds_mean": round(sum(by_task.values()) / len(tis), 2) if tis else None,
        "task_seconds_by_task": {k: round(v, 1) for k, v in sorted(by_task.items())},
        "slot_seconds": round(slot_seconds, 1),
        "overhead_share": round(1 - chunk_seconds / slot_seconds, 3) if slot_seconds else None,
        "rows_per_second_per_slot": round(rows / chunk_seconds) if chunk_seconds else None,
    }


def throughput(args) -> int:
    """Rows/s of one chunk into embedded ClickHouse and into a ClickHouse server (the endpoint)."""
    import os
    import statistics

    from airflow_backfill_provider.historian.transfer import transfer_chunk
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook
    from airflow_backfill_provider.testing.services import postgres_historian, postgres_server
    from airflow_backfill_provider.testing.simulator import SimulatorConfig
    from tests.support.clickhouse_http import clickhouse_http_server

    work = Path(tempfile.mkdtemp(prefix="abp-bench-throughput-"))
    end = START + timedelta(days=1)
    results = {}
    try:
        with postgres_server() as pg_url:
            url, sim = postgres_historian(
                pg_url,
                "historian",
                SimulatorConfig(
                    start=START, end=end, tags=args.throughput_tags, rate=86400 * args.throughput_tags / 1e6
                ),
            )
            os.environ["AIRFLOW_CONN_BENCH_SOURCE"] = json.dumps(
                {"conn_type": "wonderware", "extra": {"sqlalchemy_url": url}}
            )
            source = WonderwareHook(wonderware_conn_id="bench_source")
            tags = source.discover_tags()
            say(f"Simulated {sim.total_rows:,} rows of {len(tags)} tags over one day into PostgreSQL")
            with clickhouse_http_server(work / "server") as endpoint:
                targets = {
                    "embedded": {"conn_type": "clickhouse", "extra": {"chdb_path": str(work / "embedded")}},
                    "server (HTTP)": endpoint.connection(),
                }
                for mode, conn in targets.items():
                    os.environ["AIRFLOW_CONN_BENCH_TARGET"] = json.dumps(conn)
                    runs = []
                    for _ in range(args.repeat):
                        target = ClickHouseBackfillHook(clickhouse_conn_id="bench_target")
                        out = transfer_chunk(
                            source, target, table="WonderwareHistory", tags=tags, start=START, end=end,
                            batch_size=100_000, retry=source.call_with_retry,
                        )  # fmt: skip
                        runs.append(out)
                        say(f"  {mode}: {out['rows']:,} rows in {out['seconds']:.2f} s")
                    seconds = statistics.median(r["seconds"] for r in runs)
                    results[mode] = {
                        "rows": runs[0]["rows"],
                        "seconds": seconds,
                        "rows_per_second": round(runs[0]["rows"] / seconds),
                    }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say()
    say(f"One chunk, one slot, median of {args.repeat}:")
    for mode, r in results.items():
        say(f"  {mode:<14} {r['rows']:>10,} rows  {r['seconds']:6.2f} s  {r['rows_per_second']:>9,} rows/s")
    say(json.dumps(results))
    return 0


def table(results: list[dict]) -> list[str]:
    head = (
        f"{'executor':<15} {'intervals':>9} {'TIs':>5} {'wall s':>7} {'span s':>7} {'TI/s':>6} "
        f"{'chunk work s':>12} {'slot-s':>7} {'overhead':>8} {'queued→run s':>12} {'task s':>6} "
        f"{'rows':>9} {'rows/s/slot':>11} exact"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['executor']:<15} {r['intervals']:>9} {r['task_instances']:>5} {r['wall_seconds']:>7.1f} "
            f"{r['span_seconds']:>7.1f} {r['ti_per_second']:>6.2f} {r['chunk_work_seconds']:>12.1f} "
            f"{r['slot_seconds']:>7.0f} {r['overhead_share']:>8.0%} {r['queued_to_running_seconds_mean']:>12.2f} "
            f"{r['task_seconds_mean']:>6.2f} {r['rows']:>9,} "
            f"{r['rows_per_second_per_slot'] or 0:>11,} {'yes' if r['exact'] and not r['failed_runs'] else 'NO'}"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--intervals", default="30,90,365", help="daily intervals per case, comma-separated")
    parser.add_argument("--executors", default="LocalExecutor,CeleryExecutor")
    parser.add_argument("--tags", type=int, default=8, help="tags of the historian (one chunk per day)")
    parser.add_argument("--rate", type=float, default=300.0, help="seconds between two samples of a tag")
    parser.add_argument("--max-active-runs", type=int, default=4)
    parser.add_argument("--parallelism", type=int, default=4, help="LocalExecutor task slots")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="slots per Celery worker")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds a case may take")
    parser.add_argument("--throughput", action="store_true", help="one large chunk's rows/s per slot instead")
    parser.add_argument("--throughput-tags", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.throughput:
        return throughput(args)
    intervals = [int(x) for x in args.intervals.split(",")]
    executors = args.executors.split(",")

    from airflow_backfill_provider.testing.services import postgres_historian, postgres_server, redis_server
    from airflow_backfill_provider.testing.simulator import SimulatorConfig

    work = Path(tempfile.mkdtemp(prefix="abp-bench-scale-"))
    results = []
    began = time.monotonic()
    try:
        with postgres_server() as pg_url, redis_server() as redis:
            broker_url = redis.url
            days = max(intervals)
            historian_url, sim = postgres_historian(
                pg_url,
                "historian",
                SimulatorConfig(
                    start=START,
                    end=START + timedelta(days=days),
                    tags=args.tags,
                    rate=args.rate,
                    seed=11,
                    boundary_every=timedelta(days=1),
                ),
            )
            say(f"Simulated {sim.total_rows:,} rows of {args.tags} tags over {days} days into PostgreSQL")
            for n in intervals:  # both executors at one size before the next size
                for executor in executors:
                    say(f"{executor}: backfill of {n} daily intervals …")
                    result = run_case(
                        executor=executor,
                        days=n,
                        historian_url=historian_url,
                        pg_url=pg_url,
                        broker_url=broker_url,
                        work=work,
                        args=args,
                    )
                    results.append(result)
                    say("  " + json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say()
    say(
        f"Native backfill of wonderware_backfill, {args.tags} tags every {args.rate:g}s, one chunk per day, "
        f"--max-active-runs {args.max_active_runs}; LocalExecutor parallelism {args.parallelism}; "
        f"CeleryExecutor {args.workers} workers x {args.worker_concurrency} slots; PostgreSQL metadata DB; "
        f"ClickHouse server (HTTP); {date.today().isoformat()}"
    )
    for line in table(results):
        say(line)
    say(json.dumps({"cases": results, "total_seconds": round(time.monotonic() - began, 1)}))
    return 0 if all(r["exact"] and not r["failed_runs"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
