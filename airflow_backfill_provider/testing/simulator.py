"""A Wonderware/AVEVA Historian simulator: ``TagRef`` and ``History`` in any SQLAlchemy database.

The tests (PostgreSQL), the demo (SQLite) and the bench share this module: the Wonderware hook
builds its source queries from :func:`history_tables`, so the simulated schema is the one the hook
reads. This module is the simulator's API and its ``wonderware-simulator`` command line; the rows
are made in :mod:`.generation` and loaded in :mod:`.loading`. It needs numpy (the ``[simulator]``
extra); the provider's runtime never imports it. No Airflow import.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta

from airflow_backfill_provider.historian.queries import history_tables
from airflow_backfill_provider.testing.generation import (
    DEFAULT_MIX,
    HOSTILE_TAG_NAMES,
    SIMULATED_TYPES,
    STRING_STATES,
    SYSTEM_TAGS,
    SimTag,
    SimulatorConfig,
    iter_history_batches,
    plan_tags,
    tagref_rows,
)
from airflow_backfill_provider.testing.loading import SimulationSummary, simulate
from airflow_backfill_provider.utils import parse_duration, to_utc

__all__ = [
    "DEFAULT_MIX",
    "HOSTILE_TAG_NAMES",
    "SIMULATED_TYPES",
    "DEMO_DAYS",
    "DEMO_START",
    "STRING_STATES",
    "SYSTEM_TAGS",
    "SimTag",
    "SimulationSummary",
    "SimulatorConfig",
    "demo_config",
    "history_tables",
    "iter_history_batches",
    "main",
    "plan_tags",
    "simulate",
    "tagref_rows",
]

log = logging.getLogger(__name__)

# The history of `make demo` and `make ui`: three UTC days from 1 January 2025.
DEMO_START = datetime(2025, 1, 1)
DEMO_DAYS = 3


def demo_config() -> SimulatorConfig:
    """What `make demo` and `make ui` simulate, the history docs/getting-started.md counts: 36 tags
    (analog, discrete, string; the first three with hostile names) and 3 ``Sys*`` tags, a sample
    every 30 s, a row per tag on every UTC midnight, over :data:`DEMO_DAYS` days from
    :data:`DEMO_START`: 103,716 rows per day without the ``Sys*`` tags."""
    return SimulatorConfig(
        start=DEMO_START,
        end=DEMO_START + timedelta(days=DEMO_DAYS),
        tags=36,
        rate=30,
        seed=2025,
        boundary_every=timedelta(days=1),
        hostile_tags=True,
    )


def _naive_utc(value: str) -> datetime:
    return to_utc(value).replace(tzinfo=None)


def _parse_mix(value: str) -> dict[str, float]:
    try:
        pairs = (item.split("=", 1) for item in value.split(",") if item.strip())
        return {k.strip().lower(): float(v) for k, v in pairs}
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"mix {value!r}: use e.g. analog=0.6,discrete=0.2,string=0.2"
        ) from err


def main(argv: Sequence[str] | None = None) -> int:
    """``wonderware-simulator``: fill a historian; the last line printed is a JSON summary."""
    parser = argparse.ArgumentParser(
        prog="wonderware-simulator",
        description="Fill TagRef and History of a simulated Wonderware/AVEVA Historian at any SQLAlchemy "
        "URL (SQLite, PostgreSQL, SQL Server). The last line printed is a JSON summary.",
        epilog="example: wonderware-simulator --url sqlite:////tmp/historian.db --start 2025-01-01 "
        "--end 2025-01-04 --tags 36 --hostile-tags --replace   (docs/simulator.md)",
    )
    parser.add_argument("--url", required=True, help="SQLAlchemy URL, e.g. sqlite:////tmp/historian.db")
    parser.add_argument("--tags", type=int, default=40, help="non-system tags (default 40)")
    parser.add_argument(
        "--mix", type=_parse_mix, default=dict(DEFAULT_MIX), help="analog=0.6,discrete=0.2,string=0.2"
    )
    parser.add_argument(
        "--sys-tags", type=int, default=3, help=f"Sys* tags, 0..{len(SYSTEM_TAGS)} (default 3)"
    )
    parser.add_argument(
        "--start", type=_naive_utc, required=True, help="inclusive, ISO 8601, UTC if no offset"
    )
    parser.add_argument("--end", type=_naive_utc, required=True, help="exclusive")
    parser.add_argument("--rate", type=float, default=60.0, help="seconds between samples of a tag (60)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same rows (1)")
    parser.add_argument("--boundary-rows", action="store_true", help="add a row per tag on every boundary")
    parser.add_argument("--boundary-every", default="1d", help="boundary period with --boundary-rows (1d)")
    # argparse %-formats help texts, and a hostile name holds a "%"
    hostile = str(HOSTILE_TAG_NAMES).replace("%", "%%")
    parser.add_argument("--hostile-tags", action="store_true", help=f"rename the first tags {hostile}")
    parser.add_argument("--replace", action="store_true", help="drop and recreate TagRef and History")
    parser.add_argument("--schema", default=None, help="database schema of the tables")
    parser.add_argument(
        "--method",
        default="auto",
        choices=("auto", "adbc", "copy", "executemany"),
        help="how rows are loaded: auto picks ADBC or COPY where installed, else executemany",
    )
    parser.add_argument(
        "--slice-rows", type=int, default=200_000, help="rows generated and loaded at a time (200000)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        config = SimulatorConfig(
            start=args.start,
            end=args.end,
            tags=args.tags,
            rate=args.rate,
            seed=args.seed,
            mix=args.mix,
            sys_tags=args.sys_tags,
            boundary_every=parse_duration(args.boundary_every, "boundary period")
            if args.boundary_rows
            else None,
            hostile_tags=args.hostile_tags,
            slice_rows=args.slice_rows,
        )
    except ValueError as err:
        parser.error(str(err))
    summary = simulate(args.url, config, replace=args.replace, schema=args.schema, method=args.method)
    for group, rows in summary.rows.items():
        log.info("%-8s %4d tags %12d rows", group, summary.tags[group], rows)
    log.info(
        "%d rows (%d on boundaries, %d NULL Values) from %s to %s via %s in %.2f s",
        summary.total_rows,
        summary.boundary_rows,
        summary.null_values,
        summary.first,
        summary.last,
        summary.loader,
        summary.seconds,
    )
    sys.stdout.write(json.dumps(summary.as_dict()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
