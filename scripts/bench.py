"""`make bench`: History → ClickHouse throughput and memory, ours against the baselines, in one run.

1. starts a throwaway PostgreSQL (``airflow_backfill_provider.testing.services``) and fills
   ``History`` with the simulator: ``--rows`` rows (default 1M) of ``--tags`` tags (default 100) at
   one row per minute per tag, with a row per tag on every UTC midnight (the boundary rows the seed
   reads twice) and the hostile tag names;
2. runs every case ``--repeat`` times (default 3), each run in its own fresh process (this script
   with ``--case``), into a fresh embedded ClickHouse (chdb) that the process loads *before* the
   clock starts (the engine alone is ~340 MB; "added" memory is peak RSS minus RSS just before);
3. checks every ClickHouse result against the source: rows moved, duplicates (rows minus distinct
   (TagName, DateTime)), NULL-Value rows dropped;
4. prints a table and, as its last line, one JSON object (medians, ratios, targets).

Cases:

* ``ours``: what ``WonderwareToClickHouseOperator`` runs (``transfer.transfer_chunk`` with
  ``WonderwareHook`` and ``ClickHouseBackfillHook``) over the chunks ``planning.plan_chunks`` makes of the
  window, one after the other in one process (one Airflow worker slot); Arrow reader;
* ``ours_dbapi``: the same with the connection extra ``reader=dbapi`` (the fallback);
* ``seed``: seed 004's algorithm: 1-day × 10-tag chunks, ``BETWEEN`` on both ends, ``Value IS NOT
  NULL``, ``wwRetrievalMode = 'Delta'``, ``ORDER BY DateTime``, all rows fetched as dicts, a
  row-oriented ``client.insert``;
* ``python_streaming``: server-side cursor, 50k-row batches transposed to columns,
  ``client.insert(column_oriented=True)``;
* ``generic_transfer``: Airflow's ``GenericTransfer`` from the Wonderware hook into the clickhousedb
  provider's ``ClickHouseHook`` (``insert_rows``: row-at-a-time INSERTs), capped at
  ``--generic-rows`` (default 2,000) rows because it moves ~80 rows/s;
* ``raw_read``: the source query through a psycopg server-side cursor as tuples, nothing inserted;
* ``raw_insert``: prepared Python column lists (read before the clock starts) inserted columnar.

``--memory-check`` also runs ``ours`` on a second data set of ``--memory-rows`` (default 5M) and
reports the added memory at both sizes. ``--orchestration`` measures a native ``airflow backfill
create`` instead (see :func:`orchestration`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

UTC = timezone.utc
START = datetime(2025, 1, 1)
RATE = 60  # seconds between two samples of a tag
TABLE = "WonderwareHistory"
CASES = ("ours", "ours_dbapi", "seed", "python_streaming", "raw_read", "raw_insert", "generic_transfer")
# Cases that load ClickHouse, whose result is checked against the source.
LOADING = ("ours", "ours_dbapi", "seed", "python_streaming", "raw_insert", "generic_transfer")


def say(message: str = "") -> None:
    print(message, flush=True)  # noqa: T201 - a command-line script


# --- measuring inside a case process ---------------------------------------------------------------


def _status(key: str) -> int:
    """A /proc/self/status figure in MB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    raise KeyError(key)


def _reset_peak() -> None:
    """Reset VmHWM (the peak RSS) to the current RSS (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _conns(url: str, chdb_path: str, reader: str) -> None:
    os.environ["AIRFLOW_CONN_BENCH_WONDERWARE"] = json.dumps(
        {"conn_type": "wonderware", "extra": {"sqlalchemy_url": url, "reader": reader}}
    )
    os.environ["AIRFLOW_CONN_BENCH_CLICKHOUSE"] = json.dumps(
        {"conn_type": "clickhouse", "extra": {"chdb_path": chdb_path}}
    )


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _history_sql(tags, start, end):
    """Our source query, compiled for psycopg (``%(name)s`` parameters) with its parameters."""
    import sqlalchemy as sa

    from airflow_backfill_provider.historian.queries import Historian

    stmt = Historian().history_query(tags, start, end)
    compiled = stmt.compile(
        dialect=sa.create_engine("postgresql+psycopg://").dialect,
        compile_kwargs={"render_postcompile": True},
    )
    return compiled.string, compiled.params


def _tags(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(_libpq(url)) as conn:
        return [r[0] for r in conn.execute('SELECT "TagName" FROM "TagRef" ORDER BY 1')]


def run_case(args) -> dict:
    """One measured run of ``args.case``, in this (fresh) process."""
    import clickhouse_connect  # noqa: F401 - loaded before the clock, as in any task process
    import pyarrow  # noqa: F401

    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    start, end = _parse(args.start), _parse(args.end)
    work = tempfile.mkdtemp(prefix="bench-case-", dir=args.workdir)
    chdb_path = os.path.join(work, "chdb")
    _conns(args.url, chdb_path, "dbapi" if args.case == "ours_dbapi" else "arrow")
    target = ClickHouseBackfillHook(clickhouse_conn_id="bench_clickhouse")
    with target.session() as client:  # loads the embedded engine before the clock starts
        target.ensure_history_table(client, TABLE)
    tags = _tags(args.url)
    prepared = _prepare_raw_insert(args.url, tags, start, end) if args.case == "raw_insert" else None

    rss_before = _status("VmRSS")
    _reset_peak()
    began = time.perf_counter()
    moved = CASE_FUNCTIONS[args.case](args, tags, start, end, target, prepared)
    seconds = time.perf_counter() - began
    peak = _status("VmHWM")
    result = {
        "case": args.case,
        "rows_moved": moved,
        "seconds": round(seconds, 3),
        "rows_per_second": round(moved / seconds) if seconds else 0,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "added_mb": peak - rss_before,
    }
    if args.case in LOADING:
        result.update(_check(target))
    shutil.rmtree(work, ignore_errors=True)
    return result


def _check(target) -> dict:
    with target.session() as client:
        rows, distinct, nulls = client.query(
            f"SELECT count(), uniqExact(TagName, DateTime), countIf(Value IS NULL) FROM {TABLE}"
        ).result_rows[0]
    return {"clickhouse_rows": int(rows), "duplicates": int(rows - distinct), "null_value_rows": int(nulls)}


def case_ours(args, tags, start, end, target, _prepared) -> int:
    from airflow_backfill_provider.historian.planning import plan_chunks
    from airflow_backfill_provider.historian.transfer import transfer_chunk
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook
    from airflow_backfill_provider.utils import to_utc

    source = WonderwareHook(wonderware_conn_id="bench_wonderware")
    moved = 0
    for chunk in plan_chunks(
        start.replace(tzinfo=UTC),
        end.replace(tzinfo=UTC),
        tags,
        window=args.chunk_window,
        tag_group_size=args.tag_group_size,
    ):
        result = transfer_chunk(
            source,
            target,
            table=TABLE,
            tags=list(chunk.tags),
            start=to_utc(chunk.window_start),
            end=to_utc(chunk.window_end),
            batch_size=args.batch_size,
            retry=source.call_with_retry,
            spool_dir=args.workdir,
            spool_rows=args.spool_rows,
        )
        moved += result["rows"]
    return moved


def case_seed(args, tags, start, end, target, _prepared) -> int:
    """Seed 004's fetch-and-insert loop, faithfully: its chunking, its SQL, its dicts, its insert."""
    import psycopg
    from psycopg.rows import dict_row

    from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES

    columns = ", ".join(f'"{c}"' for c in HISTORY_COLUMN_NAMES)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    date_ranges = []
    while day < end:
        date_ranges.append((day, day + timedelta(days=1)))
        day += timedelta(days=1)
    tag_chunks = [tags[i : i + 10] for i in range(0, len(tags), 10)]
    moved = 0
    with psycopg.connect(_libpq(args.url), row_factory=dict_row) as conn, target.session() as client:
        for date_from, date_to in date_ranges:
            for tag_chunk in tag_chunks:
                rows = conn.execute(
                    f'SELECT {columns} FROM "History" WHERE "TagName" IN ({", ".join(["%s"] * len(tag_chunk))}) '
                    'AND "DateTime" BETWEEN %s AND %s AND "Value" IS NOT NULL '
                    'AND "wwRetrievalMode" = \'Delta\' ORDER BY "DateTime" ASC',
                    [*tag_chunk, date_from, date_to],
                ).fetchall()
                if rows:
                    names = list(rows[0].keys())
                    client.insert(TABLE, [[row[n] for n in names] for row in rows], column_names=names)
                    moved += len(rows)
    return moved


def case_python_streaming(args, tags, start, end, target, _prepared) -> int:
    import sqlalchemy as sa

    from airflow_backfill_provider.historian.queries import Historian
    from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES

    engine = sa.create_engine(args.url)
    stmt = Historian().history_query(tags, start, end)
    moved = 0
    with engine.connect() as conn, target.session() as client:
        result = conn.execution_options(stream_results=True, max_row_buffer=50_000).execute(stmt)
        for rows in result.partitions(50_000):
            client.insert(
                TABLE,
                list(zip(*rows, strict=True)),
                column_names=list(HISTORY_COLUMN_NAMES),
                column_oriented=True,
            )
            moved += len(rows)
    engine.dispose()
    return moved


def case_raw_read(args, tags, start, end, _target, _prepared) -> int:
    import psycopg

    sql, params = _history_sql(tags, start, end)
    moved = 0
    with psycopg.connect(_libpq(args.url)) as conn, conn.cursor(name="bench_raw_read") as cur:
        cur.execute(sql, params)
        while rows := cur.fetchmany(50_000):
            moved += len(rows)
    return moved


def _prepare_raw_insert(url, tags, start, end) -> list[list]:
    import psycopg

    sql, params = _history_sql(tags, start, end)
    with psycopg.connect(_libpq(url)) as conn:
        rows = conn.execute(sql, params).fetchall()
    return [list(col) for col in zip(*rows, strict=True)] if rows else []


def case_raw_insert(args, _tags, _start, _end, target, prepared) -> int:
    from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES

    n = len(prepared[0]) if prepared else 0
    with target.session() as client:
        for i in range(0, n, 50_000):
            client.insert(
                TABLE,
                [col[i : i + 50_000] for col in prepared],
                column_names=list(HISTORY_COLUMN_NAMES),
                column_oriented=True,
            )
    return n


def case_generic_transfer(args, tags, start, end, target, _prepared) -> int:
    from airflow.providers.common.sql.operators.generic_transfer import GenericTransfer

    from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    columns = ", ".join(f'"{c}"' for c in HISTORY_COLUMN_NAMES)
    op = GenericTransfer(
        task_id="generic_transfer",
        sql=f'SELECT {columns} FROM "History" ORDER BY "TagName", "DateTime" LIMIT {int(args.generic_rows)}',
        source_conn_id="bench_wonderware",
        destination_conn_id="bench_clickhouse",
        destination_table=TABLE,
        insert_args={"target_fields": list(HISTORY_COLUMN_NAMES)},
    )
    # The hooks GenericTransfer would look up by connection type, given directly: the provider's
    # ClickHouseHook (our ClickHouseBackfillHook subclasses it only to open the embedded engine under its lock).
    op.__dict__["source_hook"] = WonderwareHook(wonderware_conn_id="bench_wonderware")
    op.__dict__["destination_hook"] = target
    op.execute(context={})
    return int(args.generic_rows)


CASE_FUNCTIONS = {
    "ours": case_ours,
    "ours_dbapi": case_ours,
    "seed": case_seed,
    "python_streaming": case_python_streaming,
    "raw_read": case_raw_read,
    "raw_insert": case_raw_insert,
    "generic_transfer": case_generic_transfer,
}


# --- the driver ---------------------------------------------------------------------------------------


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=None)


def make_dataset(base_url: str, name: str, rows: int, tags: int) -> dict:
    from airflow_backfill_provider.testing.services import postgres_historian
    from airflow_backfill_provider.testing.simulator import SimulatorConfig

    end = START + timedelta(seconds=RATE * rows / tags)
    url, summary = postgres_historian(
        base_url,
        name,
        SimulatorConfig(
            start=START,
            end=end,
            tags=tags,
            sys_tags=0,
            rate=RATE,
            seed=4,
            boundary_every=timedelta(days=1),
            hostile_tags=True,
        ),
    )
    return {"url": url, "start": START, "end": end, "summary": summary.as_dict()}


def run_in_process(case: str, data: dict, args, repeat_index: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--case",
        case,
        "--url",
        data["url"],
        "--start",
        data["start"].isoformat(),
        "--end",
        data["end"].isoformat(),
        "--workdir",
        args.workdir,
        "--batch-size",
        str(args.batch_size),
        "--spool-rows",
        str(args.spool_rows),
        "--chunk-window",
        args.chunk_window,
        "--tag-group-size",
        str(args.tag_group_size),
        "--generic-rows",
        str(args.generic_rows),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"case {case} (run {repeat_index + 1}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def aggregate(case: str, runs: list[dict], expected: dict) -> dict:
    """Medians over the runs, and correctness of every run against the source."""
    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("seconds", "rows_per_second", "rss_before_mb", "peak_rss_mb", "added_mb")
    }
    out = {
        "runs": len(runs),
        "rows_moved": runs[0]["rows_moved"],
        **{k: round(v) if k != "seconds" else round(v, 3) for k, v in med.items()},
        "rows_per_second_each": [r["rows_per_second"] for r in runs],
        "added_mb_each": [r["added_mb"] for r in runs],
    }
    if case in LOADING:
        want_rows = expected["rows"] if case != "generic_transfer" else runs[0]["rows_moved"]
        out["expected_rows"] = want_rows
        out["clickhouse_rows"] = runs[0]["clickhouse_rows"]
        out["duplicates"] = max(r["duplicates"] for r in runs)
        out["dropped_null_value_rows"] = (
            max(expected["null_values"] - r["null_value_rows"] for r in runs)
            if case != "generic_transfer"
            else 0
        )
        out["exact"] = all(
            r["clickhouse_rows"] == want_rows and r["duplicates"] == 0 and r["rows_moved"] == want_rows
            for r in runs
        ) and (case == "generic_transfer" or out["dropped_null_value_rows"] == 0)
    return out


def source_figures(url: str, start: datetime, end: datetime) -> dict:
    import psycopg

    with psycopg.connect(_libpq(url)) as conn:
        rows, nulls = conn.execute(
            'SELECT count(*), count(*) FILTER (WHERE "Value" IS NULL) FROM "History" '
            'WHERE "DateTime" >= %s AND "DateTime" < %s',
            (start, end),
        ).fetchone()
    return {"rows": rows, "null_values": nulls}


def machine() -> dict:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def print_table(results: dict, expected: dict) -> None:
    header = (
        f"{'case':<18}{'rows moved':>11}{'expected':>10}{'rows/s':>10}{'seconds':>9}"
        f"{'peak MB':>9}{'before MB':>10}{'added MB':>9}{'dups':>6}{'NULLs lost':>11}  exact"
    )
    say(header)
    say("-" * len(header))
    for case, r in results.items():
        say(
            f"{case:<18}{r['rows_moved']:>11,}{r.get('expected_rows', r['rows_moved']):>10,}"
            f"{r['rows_per_second']:>10,}{r['seconds']:>9.2f}{r['peak_rss_mb']:>9}{r['rss_before_mb']:>10}"
            f"{r['added_mb']:>9}{r.get('duplicates', '-'):>6}{r.get('dropped_null_value_rows', '-'):>11}"
            f"  {r.get('exact', '-')}"
        )


def ratio(results: dict, a: str, b: str) -> float | None:
    if a in results and b in results and results[b]["rows_per_second"]:
        return round(results[a]["rows_per_second"] / results[b]["rows_per_second"], 2)
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="History rows (default 1M)")
    parser.add_argument("--tags", type=int, default=100, help="tags (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; medians reported")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {CASES}")
    parser.add_argument("--generic-rows", type=int, default=2000, help="row cap of generic_transfer")
    parser.add_argument("--batch-size", type=int, default=50_000, help="ours: rows per source batch")
    parser.add_argument("--spool-rows", type=int, default=None, help="ours: rows per spool file / INSERT")
    parser.add_argument(
        "--chunk-window", default="8d", help="ours: sub-window per chunk (default 8d: one ~1M-row chunk)"
    )
    parser.add_argument("--tag-group-size", type=int, default=100, help="ours: tags per chunk (default 100)")
    parser.add_argument("--memory-check", action="store_true", help="also run ours on --memory-rows")
    parser.add_argument("--memory-rows", type=int, default=5_000_000)
    parser.add_argument("--orchestration", action="store_true", help="native backfill wall time instead")
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.spool_rows is None:
        from airflow_backfill_provider.historian.transfer import DEFAULT_SPOOL_ROWS

        args.spool_rows = DEFAULT_SPOOL_ROWS
    if args.case:
        say(json.dumps(run_case(args)))
        return 0
    if args.orchestration:
        from bench_orchestration import orchestration  # a sibling: Python puts scripts/ on the path

        return orchestration(args)

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {CASES}")
    from airflow_backfill_provider.testing.services import postgres_server

    began = time.monotonic()
    host = machine()
    args.workdir = tempfile.mkdtemp(prefix="abp-bench-")
    try:
        with postgres_server() as base:
            say(f"Generating {args.rows:,} History rows ({args.tags} tags) in a throwaway PostgreSQL …")
            data = make_dataset(base, "bench", args.rows, args.tags)
            expected = source_figures(data["url"], data["start"], data["end"])
            say(
                f"  {expected['rows']:,} rows ({data['summary']['boundary_rows']:,} on midnights, "
                f"{expected['null_values']:,} NULL Values) from {data['start']} to {data['end']} "
                f"in {data['summary']['seconds']:.1f}s"
            )
            results = {}
            for case in cases:
                runs = []
                for i in range(args.repeat):
                    runs.append(run_in_process(case, data, args, i))
                    say(
                        f"  {case:<18} run {i + 1}/{args.repeat}: {runs[-1]['rows_per_second']:>9,} rows/s, "
                        f"{runs[-1]['seconds']:.2f}s, +{runs[-1]['added_mb']} MB"
                    )
                results[case] = aggregate(case, runs, expected)
            memory = None
            if args.memory_check:
                memory = memory_check(base, args, results, data)
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)

    say()
    say(
        f"History → embedded ClickHouse, {expected['rows']:,} rows, {args.tags} tags, median of {args.repeat}"
    )
    say(
        f"machine: {host['cpus']} CPUs ({host['cpu']}), {host['memory_gb']} GB; load at start {host['load_avg_at_start']}"
    )
    if "generic_transfer" in results:
        say(f"generic_transfer is capped at {args.generic_rows:,} rows (it moves ~80 rows/s).")
    print_table(results, expected)
    ratios = {
        "ours_vs_seed": ratio(results, "ours", "seed"),
        "ours_vs_python_streaming": ratio(results, "ours", "python_streaming"),
        "ours_vs_generic_transfer": ratio(results, "ours", "generic_transfer"),
        "ours_dbapi_vs_seed": ratio(results, "ours_dbapi", "seed"),
    }
    ours = results.get("ours", {})
    targets = {
        "ours_vs_seed_ge_10": (ratios["ours_vs_seed"] or 0) >= 10,
        "ours_vs_python_streaming_ge_4": (ratios["ours_vs_python_streaming"] or 0) >= 4,
        "added_memory_le_300mb": bool(ours) and ours["added_mb"] <= 300,
        "ours_exact": bool(ours.get("exact")),
    }
    if memory:
        targets["memory_flat_within_15pct"] = memory["flat_within_15pct"]
        targets["added_memory_le_300mb"] = (
            targets["added_memory_le_300mb"] and memory["added_mb_large"] <= 300
        )
    say(
        "ratios: "
        + ", ".join(f"{k} {v}×" for k, v in ratios.items() if v is not None)
        + (
            f"; memory {memory['rows_small']:,} → {memory['rows_large']:,} rows: +{memory['added_mb_small']} → "
            f"+{memory['added_mb_large']} MB (×{memory['ratio']})"
            if memory
            else ""
        )
    )
    say(f"targets: {targets}  ({time.monotonic() - began:.0f}s in all)")
    say(
        json.dumps(
            {
                "machine": host,
                "rows": expected["rows"],
                "tags": args.tags,
                "repeat": args.repeat,
                "settings": {
                    "batch_size": args.batch_size,
                    "spool_rows": args.spool_rows,
                    "chunk_window": args.chunk_window,
                    "tag_group_size": args.tag_group_size,
                    "generic_rows": args.generic_rows,
                },
                "source": expected,
                "cases": results,
                "ratios": ratios,
                "memory_check": memory,
                "targets": targets,
            }
        )
    )
    return 0


def memory_check(base: str, args, results: dict, small: dict) -> dict:
    """ours on a larger data set: is the added memory flat?"""
    say(f"Memory check: generating {args.memory_rows:,} rows …")
    large = make_dataset(base, "bench_large", args.memory_rows, args.tags)
    # One chunk holding the whole window, as in the main run: the question is whether a chunk five
    # times larger needs more memory (it must not: memory is bounded by batch and spool sizes).
    one_chunk = argparse.Namespace(
        **{**vars(args), "chunk_window": f"{(large['end'] - large['start']).days + 1}d"}
    )
    runs = []
    for i in range(args.repeat):
        runs.append(run_in_process("ours", large, one_chunk, i))
        say(
            f"  ours @ {args.memory_rows:,} run {i + 1}/{args.repeat}: {runs[-1]['rows_per_second']:,} rows/s, "
            f"+{runs[-1]['added_mb']} MB"
        )
    small_added = results["ours"]["added_mb"] if "ours" in results else None
    large_added = round(statistics.median(r["added_mb"] for r in runs))
    large_rps = round(statistics.median(r["rows_per_second"] for r in runs))
    ratio_ = round(large_added / small_added, 3) if small_added else None
    return {
        "rows_small": results.get("ours", {}).get("rows_moved"),
        "rows_large": runs[0]["rows_moved"],
        "added_mb_small": small_added,
        "added_mb_large": large_added,
        "peak_rss_mb_large": round(statistics.median(r["peak_rss_mb"] for r in runs)),
        "rows_per_second_large": large_rps,
        "ratio": ratio_,
        "flat_within_15pct": ratio_ is not None and abs(ratio_ - 1) <= 0.15,
    }


if __name__ == "__main__":
    sys.exit(main())
