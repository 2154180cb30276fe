"""The minute-level sync's cost per run against a history table of growing size (docs/sync.md).

1. starts a throwaway PostgreSQL (``airflow_backfill_provider.testing.services``) and fills its
   ``History`` with the simulator: ``--tags`` tags (default 1,000), one sample every ``--rate``
   seconds per tag (default 10), over the minutes the runs read;
2. for each size of ``--sizes`` (default 1M and 20M rows), makes an embedded ClickHouse (chdb),
   primes it with one first sync run (the default hour back), grows its history table to that size
   with older rows of the same tags (``INSERT ... SELECT FROM numbers()``, spread over the year
   before, so the sync's own monthly partition holds its share) and lets the fill's merges settle,
   as in a long-lived table;
3. times ``--runs`` sync runs, one a minute apart, the sizes taking turns on each minute (same
   source rows, same machine load): each reads its window (the new minute plus the 10-minute
   lookback) and appends the new minute;
4. checks the synced windows against the source (count, and no duplicate ``(TagName, DateTime)``);
5. prints a table and, as its last line, one JSON object.

Run it with ``.venv/bin/python scripts/bench_sync.py`` (about two minutes on two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
TABLE = "WonderwareHistory"
# The first run's horizon: a fixed instant, so every bench reads the same simulated minutes.
PRIME = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def say(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - a command-line script


def fill(hook, tags: list[str], rows: int, before: datetime) -> float:
    """Add ``rows`` older rows of ``tags`` spread over the year before ``before``; return seconds."""
    lo = before - timedelta(days=365)
    step_us = int((before - lo).total_seconds() * 1e6) // rows  # number * step stays within the year
    started = time.perf_counter()
    with hook.session() as client:
        client.command(
            f"INSERT INTO {TABLE} (DateTime, TagName, Value, Quality, wwRetrievalMode, wwVersion, wwTimeZone) "
            "SELECT fromUnixTimestamp64Micro({lo:Int64} + toInt64(number) * {step:Int64}, 'UTC'), "
            "arrayElement({tags:Array(String)}, 1 + number % length({tags:Array(String)})), "
            "number / 7, 0, 'Full', 'Latest', 'UTC' FROM numbers({rows:UInt64})",
            parameters={"lo": int(lo.timestamp() * 1e6), "step": step_us, "rows": rows, "tags": tags},
        )
    return time.perf_counter() - started


def settle(hook, timeout: float = 600.0) -> float:
    """Let the engine merge the filled parts before the clock starts (in embedded mode merges run
    only while a session is open); return the seconds it took. A long-lived table is merged: the
    merges right after a bulk fill are that fill's cost, not a sync run's."""
    started = time.perf_counter()
    quiet = 0
    with hook.session() as client:
        while time.perf_counter() - started < timeout and quiet < 3:
            merging = int(
                client.command(
                    "SELECT count() FROM system.merges WHERE table = {t:String}", parameters={"t": TABLE}
                )
            )
            quiet = quiet + 1 if not merging else 0
            time.sleep(1)
    return time.perf_counter() - started


def table_rows(hook) -> tuple[int, int, int]:
    """Rows, active parts and partitions of the history table."""
    with hook.session() as client:
        rows = int(client.command(f"SELECT count() FROM {TABLE}"))
        parts, partitions = client.query(
            "SELECT count(), uniqExact(partition_id) FROM system.parts "
            "WHERE active AND database = currentDatabase() AND table = {t:String}",
            parameters={"t": TABLE},
        ).result_rows[0]
    return rows, int(parts), int(partitions)


def check(hook, source, tags: list[str], start: datetime, end: datetime) -> dict:
    """The synced window against the source: counts, and duplicates of (TagName, DateTime)."""
    expected = sum(source.count_rows(tags, start, end).values())
    with hook.session() as client:
        held, distinct = client.query(
            f"SELECT count(), uniqExact(TagName, DateTime) FROM {TABLE} "
            "WHERE DateTime >= {s:DateTime64(6, 'UTC')} AND DateTime < {e:DateTime64(6, 'UTC')}",
            parameters={"s": start, "e": end},
        ).result_rows[0]
    return {"source_rows": expected, "clickhouse_rows": int(held), "duplicates": int(held) - int(distinct)}


@contextmanager
def _removed(path: str):
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="seconds between two samples of a tag")
    parser.add_argument("--sizes", default="1000000,20000000", help="history table sizes to measure at")
    parser.add_argument("--runs", type=int, default=5, help="timed sync runs per size")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from airflow_backfill_provider.testing.services import create_database, postgres_server
    from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

    workdir = tempfile.mkdtemp(prefix="abp-bench-sync-")
    minutes = args.runs + 2
    config = SimulatorConfig(
        start=(PRIME - 80 * MIN).replace(tzinfo=None),
        end=(PRIME + minutes * MIN).replace(tzinfo=None),
        tags=args.tags,
        rate=args.rate,
        sys_tags=0,
        seed=11,
    )
    with postgres_server() as base, _removed(workdir):
        url = create_database(base, "bench_sync")
        summary = simulate(url, config, replace=True)
        say(f"source: {summary.total_rows:,} History rows of {args.tags} tags, one every {args.rate:g}s")
        os.environ["AIRFLOW_CONN_WW_BENCH"] = json.dumps(
            {"conn_type": "wonderware", "extra": {"sqlalchemy_url": url}}
        )
        from airflow_backfill_provider.historian.sync_transfer import sync_once
        from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
        from airflow_backfill_provider.hooks.clickhouse_sync import ClickHouseSyncTarget
        from airflow_backfill_provider.hooks.wonderware import WonderwareHook

        source = WonderwareHook("ww_bench")
        tags = source.discover_tags()
        tables = []
        for size in sizes:  # one embedded ClickHouse per size, each primed by its own first run
            os.environ[f"AIRFLOW_CONN_CH_BENCH_{size}"] = json.dumps(
                {"conn_type": "clickhouse", "extra": {"chdb_path": os.path.join(workdir, f"chdb-{size}")}}
            )
            hook = ClickHouseBackfillHook(f"ch_bench_{size}")
            target = ClickHouseSyncTarget(hook, TABLE)
            first = sync_once(
                source, target, tags=tags, horizon=PRIME, retry=source.call_with_retry, table=TABLE
            )
            held = table_rows(hook)[0]
            if size <= held:
                raise SystemExit(
                    f"--sizes {size:,}: the first run alone loads {held:,} rows; use larger sizes."
                )
            filled = fill(hook, tags, size - held, PRIME - 2 * timedelta(hours=1))
            settled = settle(hook)
            rows, parts, partitions = table_rows(hook)
            say(
                f"{rows:,} rows in {parts} parts of {partitions} monthly partitions: first run {first['rows_inserted']:,} rows in "
                f"{first['seconds']:.2f}s, fill {filled:.1f}s, merges settled in {settled:.1f}s"
            )
            tables.append(
                {"size": size, "hook": hook, "target": target, "first": first, "runs": [],
                 "rows": rows, "parts": parts, "partitions": partitions, "fill": filled, "settle": settled}
            )  # fmt: skip
        horizon = PRIME
        for _ in range(args.runs):  # the sizes take turns on each minute: same data, same machine load
            horizon += MIN
            for t in tables:
                t["runs"].append(
                    sync_once(
                        source,
                        t["target"],
                        tags=tags,
                        horizon=horizon,
                        retry=source.call_with_retry,
                        table=TABLE,
                    )
                )
        results = []
        for t in tables:
            runs = t["runs"]
            seconds = [r["seconds"] for r in runs]
            median = statistics.median(seconds)
            new = statistics.median(r["rows_inserted"] for r in runs)
            read = statistics.median(r["rows_read"] for r in runs)
            results.append(
                {
                    "table_rows": t["rows"],
                    "parts": t["parts"],
                    "partitions": t["partitions"],
                    "fill_seconds": round(t["fill"], 2),
                    "settle_seconds": round(t["settle"], 2),
                    "first_run_seconds": t["first"]["seconds"],
                    "run_seconds": seconds,
                    "median_seconds": median,
                    "median_read_seconds": statistics.median(r["read_seconds"] for r in runs),
                    "median_write_seconds": statistics.median(r["write_seconds"] for r in runs),
                    "median_append_seconds": statistics.median(r["append_seconds"] for r in runs),
                    "new_rows_per_run": new,
                    "rows_read_per_run": read,
                    "new_rows_per_second": round(new / median, 1),
                    "rows_read_per_second": round(read / median, 1),
                }
            )
        exact = [check(t["hook"], source, tags, PRIME - timedelta(hours=1), horizon) for t in tables]

    say("")
    say(f"{'table rows':>12} {'parts':>6} {'run s (each)':>30} {'median s':>9} {'read s':>7} {'write s':>8} "
        f"{'append s':>9} {'new rows':>9} {'read rows':>10} {'new/s':>8} {'read/s':>8}")  # fmt: skip
    for r in results:
        each = " ".join(f"{s:.2f}" for s in r["run_seconds"])
        say(
            f"{r['table_rows']:>12,} {r['parts']:>6} {each:>30} {r['median_seconds']:>9.2f} "
            f"{r['median_read_seconds']:>7.2f} {r['median_write_seconds']:>8.2f} {r['median_append_seconds']:>9.2f} "
            f"{r['new_rows_per_run']:>9,.0f} {r['rows_read_per_run']:>10,.0f} "
            f"{r['new_rows_per_second']:>8,.0f} {r['rows_read_per_second']:>8,.0f}"
        )
    say(f"synced windows vs source: {exact}")
    ok = all(e["source_rows"] == e["clickhouse_rows"] and not e["duplicates"] for e in exact)
    say(
        json.dumps(
            {
                "tags": args.tags,
                "rate_seconds": args.rate,
                "sizes": results,
                "exact": exact,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
