"""`make bench`'s SQL Server cases: History over SQL Server's wire into ClickHouse, in one run.

No SQL Server can run here. The source is the TDS endpoint (``tests/support/tds``) in front of the
AVEVA Historian emulator (``tests/support/aveva``) holding ``--rows`` stored values (default 1M,
``--tags`` tags, one a minute, a row per tag on every midnight). The emulator computes a query's rows
in Python, far slower than a Historian, so each distinct query is answered once (a warm-up run of
every case) and its TDS bytes recorded; the measured runs get those bytes replayed at socket speed.
The source is then never the bottleneck, and every case reads the rows the Historian's rules give.

Each run is a fresh process (this module with ``--case``) that reads over TCP from the endpoint in
this process, into a fresh embedded ClickHouse loaded before the clock starts. Cases:

* ``ours``: what ``WonderwareToClickHouseOperator`` runs, chunk after chunk, with the default reader
  (mssql-python's Arrow fetch), into embedded ClickHouse; ``ours_server``: the same into a ClickHouse
  server (the tests' HTTP endpoint, its engine in a process of its own, as in production);
  ``ours_dbapi``: ``ours`` through pymssql;
* ``read_mssql_python``: the same chunk queries read into Arrow by mssql-python, nothing inserted;
  ``read_arrow_odbc``: by arrow-odbc over FreeTDS's ODBC driver (when installed); the fastest of the
  bare reads is what ``ours`` is compared with;
* ``read_pymssql``: the same queries through pymssql's ``fetchall`` (tuples, no Arrow);
* ``seed``: seed 004's loop over the same endpoint: 1-day × 10-tag chunks, ``BETWEEN``, ``Value IS
  NOT NULL``, ``wwRetrievalMode = 'Delta'``, ``ORDER BY DateTime``, rows as dicts (pymssql's
  ``as_dict``), row-oriented ``client.insert``.

Targets: ``ours`` ≥ 0.8× the fastest bare read and ≥ 8× ``seed`` (rows/s); the memory a chunk adds
≤ 300 MB and flat from ``--rows`` to ``--memory-rows`` (``--memory-check``). Run from the repository
root as a module (``python -m scripts.bench_sqlserver``): it imports ``tests/support``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scripts.bench import TABLE, _check, _reset_peak, _status, case_ours, say

UTC = timezone.utc
START = datetime(2025, 1, 1)
RATE = 60
FREETDS_ODBC = "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so"
CASES = ("read_mssql_python", "read_arrow_odbc", "read_pymssql", "ours", "ours_server", "ours_dbapi", "seed")
READS = ("read_mssql_python", "read_arrow_odbc")
LOADING = ("ours", "ours_server", "ours_dbapi", "seed")


# --- inside a case process ---------------------------------------------------------------------------


def _connection(port: int, reader: str) -> dict:
    from tests.support.sqlserver import READER, READER_PASSWORD

    return {
        "conn_type": "wonderware",
        "host": "127.0.0.1",
        "port": port,
        "login": READER,
        "password": READER_PASSWORD,
        "schema": "Runtime",
        "extra": {"reader": reader, "encrypt": "no"},
    }


def _chunks(args, tags) -> list[tuple[list[str], datetime, datetime]]:
    """``(tags, start, end)`` of each chunk ``case_ours`` transfers (planning.plan_chunks)."""
    from airflow_backfill_provider.historian.planning import plan_chunks
    from airflow_backfill_provider.utils import to_utc

    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    chunks = plan_chunks(start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), tags, window=args.chunk_window,
                         tag_group_size=args.tag_group_size)  # fmt: skip
    return [(list(c.tags), to_utc(c.window_start), to_utc(c.window_end)) for c in chunks]


def case_read_mssql_python(args, source, tags, _target) -> int:
    from sqlalchemy.engine import make_url

    from airflow_backfill_provider.historian.mssql_reader import iter_mssql_batches
    from airflow_backfill_provider.historian.queries import Historian
    from airflow_backfill_provider.historian.schema import HISTORY_COLUMNS

    url, historian, moved = make_url(source.sqlalchemy_url), Historian(), 0
    for chunk_tags, start, end in _chunks(args, tags):
        for batch in iter_mssql_batches(url, historian, chunk_tags, start, end,
                                        batch_size=args.batch_size, columns=HISTORY_COLUMNS, tls={"encrypt": "no"}):  # fmt: skip
            moved += batch.num_rows
    return moved


def case_read_arrow_odbc(args, _source, tags, _target) -> int:
    import arrow_odbc

    from airflow_backfill_provider.historian.queries import Historian, naive_utc
    from tests.support.sqlserver import READER, READER_PASSWORD

    connection = (
        f"Driver={FREETDS_ODBC};Server=127.0.0.1;Port={args.port};Database=Runtime;"
        f"UID={READER};PWD={{{READER_PASSWORD}}};TDS_Version=7.4"
    )
    moved = 0
    for chunk_tags, start, end in _chunks(args, tags):
        sql, params = _qmark(Historian().history_query(chunk_tags, start, end))
        text = [naive_utc(p).isoformat(sep=" ") if isinstance(p, datetime) else str(p) for p in params]
        reader = arrow_odbc.read_arrow_batches_from_odbc(
            query=sql,
            connection_string=connection,
            parameters=text,
            batch_size=args.batch_size,
            max_text_size=1024,  # else buffers sized for NVARCHAR(4000) in every row: 1.5 GB per batch
        )
        for batch in reader:
            moved += batch.num_rows
    return moved


def case_read_pymssql(args, source, tags, _target) -> int:
    from airflow_backfill_provider.historian.queries import Historian

    moved = 0
    conn = source.get_conn()
    try:
        cursor = conn.cursor()
        for chunk_tags, start, end in _chunks(args, tags):
            stmt = Historian().history_query(chunk_tags, start, end)
            compiled = stmt.compile(dialect=source.get_sqlalchemy_engine().dialect, compile_kwargs={"render_postcompile": True})  # fmt: skip
            cursor.execute(compiled.string, compiled.params)
            moved += len(cursor.fetchall())
    finally:
        conn.close()
    return moved


def case_seed(args, _source, tags, target) -> int:
    """Seed 004's fetch-and-insert loop, faithfully, over SQL Server's wire (pymssql, as its own did)."""
    import pymssql

    from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES
    from tests.support.sqlserver import READER, READER_PASSWORD

    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    days = [
        (start + timedelta(days=i), start + timedelta(days=i + 1))
        for i in range(-(-(end - start) // timedelta(days=1)))
    ]
    columns = ", ".join(HISTORY_COLUMN_NAMES)
    moved = 0
    conn = pymssql.connect(server="127.0.0.1", port=str(args.port), user=READER, password=READER_PASSWORD,
                           database="Runtime", as_dict=True)  # fmt: skip
    try:
        cursor = conn.cursor()
        with target.session() as client:
            for day_from, day_to in days:
                for i in range(0, len(tags), 10):
                    chunk = tags[i : i + 10]
                    cursor.execute(
                        f"SELECT {columns} FROM History WHERE TagName IN ({', '.join(['%s'] * len(chunk))}) "
                        "AND DateTime BETWEEN %s AND %s AND Value IS NOT NULL "
                        "AND wwRetrievalMode = 'Delta' ORDER BY DateTime ASC",
                        (*chunk, day_from, day_to),
                    )
                    rows = cursor.fetchall()
                    if rows:
                        names = list(rows[0].keys())
                        client.insert(TABLE, [[row[n] for n in names] for row in rows], column_names=names)
                        moved += len(rows)
    finally:
        conn.close()
    return moved


def _qmark(stmt) -> tuple[str, list]:
    from sqlalchemy.dialects import mssql

    compiled = stmt.compile(
        dialect=mssql.dialect(paramstyle="qmark"), compile_kwargs={"render_postcompile": True}
    )
    return compiled.string, [compiled.params[n] for n in compiled.positiontup]


def run_case(args) -> dict:
    import clickhouse_connect  # noqa: F401 - loaded before the clock, as in any task process

    from airflow_backfill_provider.historian.transfer import DEFAULT_SPOOL_ROWS
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    work = tempfile.mkdtemp(prefix="bench-sqlserver-", dir=args.workdir)
    os.environ["AIRFLOW_CONN_BENCH_WONDERWARE"] = json.dumps(
        _connection(args.port, "dbapi" if args.case in ("ours_dbapi", "read_pymssql") else "arrow")
    )
    if args.case != "ours_server":  # which gets a server's connection from the parent
        os.environ["AIRFLOW_CONN_BENCH_CLICKHOUSE"] = json.dumps(
            {"conn_type": "clickhouse", "extra": {"chdb_path": os.path.join(work, "chdb")}}
        )
    target = ClickHouseBackfillHook(clickhouse_conn_id="bench_clickhouse")
    with target.session() as client:
        target.ensure_history_table(client, TABLE)
    source = WonderwareHook(wonderware_conn_id="bench_wonderware")
    tags = source.discover_tags(exclude_system=False)
    args.spool_rows = DEFAULT_SPOOL_ROWS  # as a task runs it (None would be one file per chunk)
    rss_before = _status("VmRSS")
    _reset_peak()
    began, cpu = time.perf_counter(), time.process_time()
    if args.case in ("ours", "ours_server", "ours_dbapi"):
        moved = case_ours(
            args, tags, datetime.fromisoformat(args.start), datetime.fromisoformat(args.end), target, None
        )
    else:
        moved = CASE_FUNCTIONS[args.case](args, source, tags, target)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    result = {
        "case": args.case,
        "rows_moved": moved,
        "seconds": round(seconds, 3),
        "rows_per_second": round(moved / seconds) if seconds else 0,
        "added_mb": _status("VmHWM") - rss_before,
        "cpu_seconds": round(cpu, 2),  # the case process's, all its threads (ClickHouse's too)
    }
    if args.case in LOADING:
        result.update(_check(target))
    return result


CASE_FUNCTIONS = {
    "read_mssql_python": case_read_mssql_python,
    "read_arrow_odbc": case_read_arrow_odbc,
    "read_pymssql": case_read_pymssql,
    "seed": case_seed,
}


# --- the driver -------------------------------------------------------------------------------------


def available(case: str) -> bool:
    if case == "read_arrow_odbc":
        import importlib.util

        return importlib.util.find_spec("arrow_odbc") is not None and Path(FREETDS_ODBC).exists()
    return True


def run_in_process(case: str, port: int, args, start: datetime, end: datetime) -> dict:
    command = [sys.executable, "-m", "scripts.bench_sqlserver", "--case", case, "--port", str(port),
               "--start", start.isoformat(), "--end", end.isoformat(), "--workdir", args.workdir,
               "--chunk-window", args.chunk_window, "--tag-group-size", str(args.tag_group_size),
               "--batch-size", str(args.batch_size)]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    with contextlib.ExitStack() as stack:
        env = dict(os.environ)
        if case == "ours_server":
            from tests.support.clickhouse_http import clickhouse_http_server

            server = stack.enter_context(clickhouse_http_server(tempfile.mkdtemp(dir=args.workdir)))
            env["AIRFLOW_CONN_BENCH_CLICKHOUSE"] = json.dumps(server.connection())
        done = subprocess.run(command, capture_output=True, text=True, cwd=root, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def dataset(directory: Path, rows: int, tags: int):
    """A store of ``rows`` stored values and the endpoint over it, recording then replaying."""
    from airflow_backfill_provider.testing.generation import SimulatorConfig
    from tests.support.aveva import HistorianEmulator, HistorianStore
    from tests.support.sqlserver import READER, READER_PASSWORD, RecordedReplay

    end = START + timedelta(seconds=RATE * rows / tags)
    store = HistorianStore(directory / "historian.db")
    began = time.perf_counter()
    stored = store.load_simulation(
        SimulatorConfig(start=START, end=end, tags=tags, rate=RATE, seed=1, sys_tags=0,
                        boundary_every=timedelta(days=1), hostile_tags=True, slice_rows=100_000)
    )  # fmt: skip
    say(
        f"  stored {sum(stored.values()):,} values of {len(stored)} tags in {time.perf_counter() - began:.0f} s"
    )
    backend = RecordedReplay(HistorianEmulator(store, users={READER: READER_PASSWORD}))
    return backend, end, sum(stored.values())


def measure(args, rows: int, cases, *, one_chunk: bool = False) -> dict:
    """Every case on ``rows`` stored values; with ``one_chunk`` the whole window is one chunk."""
    from tests.support.tds import TdsServer

    directory = Path(tempfile.mkdtemp(prefix=f"bench-sqlserver-{rows}-", dir=args.workdir))
    backend, end, stored = dataset(directory, rows, args.tags)
    if one_chunk:
        args = argparse.Namespace(**{**vars(args), "chunk_window": f"{(end - START).days + 1}d"})
    results = {}
    with TdsServer(backend) as server:
        for case in cases:
            began = time.perf_counter()
            run_in_process(case, server.port, args, START, end)  # warm-up: records the answers
            say(f"  {case}: warm-up (recording) {time.perf_counter() - began:.0f} s")
            runs = []
            for _ in range(args.repeat):
                served = time.process_time()  # this process's CPU: the endpoint's threads
                runs.append(run_in_process(case, server.port, args, START, end))
                runs[-1]["endpoint_cpu_seconds"] = round(time.process_time() - served, 2)
            results[case] = {
                "rows": runs[0]["rows_moved"],
                "seconds": statistics.median(r["seconds"] for r in runs),
                "rows_per_second": statistics.median(r["rows_per_second"] for r in runs),
                "added_mb": statistics.median(r["added_mb"] for r in runs),
                "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
                "endpoint_cpu_seconds": statistics.median(r["endpoint_cpu_seconds"] for r in runs),
                **{k: runs[-1][k] for k in ("clickhouse_rows", "duplicates") if k in runs[-1]},
            }
            say(f"  {case}: {json.dumps(results[case])}")
    results["_stored"] = stored
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_sqlserver", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tags", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--chunk-window", default="8d", help="sub-window per chunk (8d: one ~1M-row chunk)")
    parser.add_argument("--tag-group-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--memory-check", action="store_true")
    parser.add_argument("--memory-rows", type=int, default=5_000_000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args)))  # noqa: T201 - the parent reads this line
        return 0
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="bench-sqlserver-")
    cases = [c for c in args.cases.split(",") if c and available(c)]
    say(
        f"SQL Server cases over the TDS endpoint: {args.rows:,} stored values, {args.tags} tags, {args.repeat} runs each"
    )
    results = measure(args, args.rows, cases)
    say()
    say(
        f"{'case':<20}{'rows':>11}{'median s':>10}{'rows/s':>11}{'added MB':>10}{'CPU s':>8}{'endpoint CPU s':>16}"
    )
    for case in cases:
        r = results[case]
        say(f"{case:<20}{r['rows']:>11,}{r['seconds']:>10.2f}{r['rows_per_second']:>11,}{r['added_mb']:>10}"
            f"{r['cpu_seconds']:>8.2f}{r['endpoint_cpu_seconds']:>16.2f}")  # fmt: skip
    reads = [results[c]["rows_per_second"] for c in READS if c in results]
    summary = {"stored": results["_stored"], "cases": {c: results[c] for c in cases}}
    if "ours" in results and reads:
        summary["ours_vs_fastest_read"] = round(results["ours"]["rows_per_second"] / max(reads), 2)
    if "ours" in results and "seed" in results:
        summary["ours_vs_seed"] = round(
            results["ours"]["rows_per_second"] / results["seed"]["rows_per_second"], 1
        )
    if args.memory_check and "ours" in results:
        # one chunk holding the whole window, as in the main run: a chunk five times larger must not
        # need more memory (it is bounded by the batch and spool sizes)
        big = measure(args, args.memory_rows, ["ours"], one_chunk=True)
        summary["memory_added_mb"] = {
            args.rows: results["ours"]["added_mb"],
            args.memory_rows: big["ours"]["added_mb"],
        }
    say()
    say(f"targets: ours/fastest read {summary.get('ours_vs_fastest_read')} (>= 0.8), ours/seed {summary.get('ours_vs_seed')} (>= 8)"
        + (f", added MB {summary['memory_added_mb']} (<= 300, flat)" if "memory_added_mb" in summary else ""))  # fmt: skip
    say(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
