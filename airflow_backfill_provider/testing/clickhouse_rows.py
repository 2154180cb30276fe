"""Rows of the backfill's ClickHouse table per UTC day or per tag: the check step of
docs/getting-started.md (``make rows``).

It reads through the provider's ClickHouse hook, so in embedded mode it takes the data directory's
lock like every task does, and can run while ``make ui`` and its tasks are running::

    python -m airflow_backfill_provider.testing.clickhouse_rows --chdb-path .ui/clickhouse
    python -m airflow_backfill_provider.testing.clickhouse_rows --conn-id clickhouse_default --by tag

``--conn-id`` reads the connection from your Airflow's own configuration (a server or embedded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from airflow_backfill_provider.historian.schema import DEFAULT_TABLE
from airflow_backfill_provider.testing.counts import client_counts

PROG = "python -m airflow_backfill_provider.testing.clickhouse_rows"


def say(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - a command-line tool


def _hook(chdb_path: Path | None, conn_id: str):
    """The hook on a ``chdb`` connection made here for ``chdb_path``, or on the connection ``conn_id``
    of this machine's Airflow, looked up as Airflow's own CLI does (secrets backends, environment,
    then the metadata database: a plain process has no task API to ask)."""
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook, EmbeddedClickHouseHook

    if chdb_path is None:
        from airflow.models.connection import Connection

        connection = Connection.get_connection_from_secrets(conn_id)
        return ClickHouseBackfillHook(clickhouse_conn_id=conn_id, connection=connection)
    from airflow.sdk import Connection

    extra = json.dumps({"chdb_path": str(chdb_path)})
    connection = Connection(conn_id="clickhouse_rows", conn_type="chdb", extra=extra)
    return EmbeddedClickHouseHook(clickhouse_conn_id="clickhouse_rows", connection=connection)


def format_counts(counts: dict[str, int], by: str) -> list[str]:
    """A table of ``counts`` sorted by key, with a total line."""
    width = max([len(by), len("total"), *(len(k) for k in counts)])
    lines = [f"{by:<{width}}  {'rows':>12}"]
    lines += [f"{key:<{width}}  {counts[key]:>12,}" for key in sorted(counts)]
    lines.append(f"{'total':<{width}}  {sum(counts.values()):>12,}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Rows of the backfill's ClickHouse table per UTC day or per tag, read through the "
        "provider's ClickHouse hook (embedded: under the data directory's lock, so it can run beside "
        "the tasks).",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--chdb-path", type=Path, help="an embedded ClickHouse data directory (make ui's: .ui/clickhouse)"
    )
    where.add_argument(
        "--conn-id",
        default="clickhouse_default",
        help="an Airflow connection of your Airflow's configuration instead (default clickhouse_default)",
    )
    parser.add_argument("--by", choices=("day", "tag"), default="day", help="count per UTC day or per tag")
    parser.add_argument("--table", default=DEFAULT_TABLE, help=f"the table (default {DEFAULT_TABLE})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    chdb_path = args.chdb_path.resolve() if args.chdb_path else None
    if chdb_path is not None and not chdb_path.is_dir():
        # The hook would create it: an empty new directory would hide a wrong path.
        parser.exit(
            1, f"No embedded ClickHouse at {chdb_path}: nothing was loaded there yet, or the path is wrong.\n"
        )
    from airflow.exceptions import AirflowNotFoundException

    try:
        hook = _hook(chdb_path, args.conn_id)
    except AirflowNotFoundException:
        parser.exit(
            1,
            f"This Airflow (AIRFLOW_HOME={os.environ.get('AIRFLOW_HOME', '~/airflow')}) has no connection "
            f"{args.conn_id!r}: set AIRFLOW_HOME to your installation's, or give --chdb-path.\n",
        )
    where = f"embedded ClickHouse at {chdb_path}" if chdb_path else hook.where
    with hook.session() as client:
        counts = {str(k): int(v) for k, v in client_counts(client, args.by, args.table).items()}
    if args.json:
        say(json.dumps({"where": where, "table": args.table, "by": args.by, "rows": counts}))
        return 0
    if not counts:
        say(f"{args.table} holds no rows in {where}: no run has loaded any yet.")
        return 0
    say(f"{args.table} in {where}:")
    for line in format_counts(counts, args.by):
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
