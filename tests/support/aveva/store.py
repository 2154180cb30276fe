"""The emulated Historian's stored values: ``TagRef``, the stored points of each tag, ``QualityMap``.

An SQLite file, so every session of the TDS endpoint (one thread each) opens its own connection and
sees the same data. The points are what the Historian holds; ``History`` rows are made from them by
:mod:`tests.support.aveva.retrieval` per query, never stored. Loaded from the project's simulator
(``wonderware-simulator``'s generator), or point by point by a test.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from tests.support.aveva.retrieval import QD_REVISED, Point

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_DDL = """
CREATE TABLE IF NOT EXISTS TagRef (
    TagName TEXT PRIMARY KEY, TagType INTEGER NOT NULL, Description TEXT,
    wwTagKey INTEGER, Unit TEXT, InterpolationType TEXT
);
CREATE TABLE IF NOT EXISTS Points (
    TagName TEXT NOT NULL, Time INTEGER NOT NULL, Value REAL, VValue TEXT,
    Quality INTEGER NOT NULL, QualityDetail INTEGER NOT NULL, OPCQuality INTEGER NOT NULL,
    Revision INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS Points_Tag_Time ON Points (TagName, Time);
CREATE TABLE IF NOT EXISTS QualityMap (QualityDetail INTEGER PRIMARY KEY, QualityString TEXT);
"""
# QualityMap's rows that the emulator's data uses (AVEVA pages 53682, 65400, 72348).
QUALITY_MAP = (
    (24, "Bad: not connected"),
    (44, "Good: first value after a gap"),
    (150, "Good: snapshot at the start of a history block"),
    (192, "Good"),
    (202, "Good: revised value"),
    (249, "NULL value"),
    (65536, "No data"),
)


def to_micros(t: datetime) -> int:
    """Microseconds since the epoch of ``t`` (naive means UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    from datetime import timedelta

    return _EPOCH + timedelta(microseconds=us)


class HistorianStore:
    """Stored values in one SQLite file; :meth:`connect` gives a connection per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._write_lock = threading.Lock()
        with closing(self.connect()) as conn:
            conn.executescript(_DDL)
            conn.executemany("INSERT OR IGNORE INTO QualityMap VALUES (?, ?)", QUALITY_MAP)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    # -- writing ---------------------------------------------------------------------------------

    def add_tag(
        self,
        name: str,
        tag_type: int = 1,
        *,
        description: str | None = None,
        key: int | None = None,
        unit: str | None = None,
        interpolation: str | None = None,
    ) -> None:
        with self._write_lock, closing(self.connect()) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO TagRef VALUES (?, ?, ?, ?, ?, ?)",
                (
                    name,
                    tag_type,
                    description,
                    key,
                    unit,
                    interpolation or ("Linear" if tag_type == 1 else "StairStep"),
                ),
            )

    def add_points(self, tag: str, points: Iterable[Point]) -> None:
        rows = [
            (
                tag,
                to_micros(p.time),
                p.value,
                p.vvalue,
                p.quality,
                p.quality_detail,
                p.opc_quality,
                p.revision,
            )
            for p in points
        ]
        with self._write_lock, closing(self.connect()) as conn:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO Points VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")

    def revise(self, tag: str, time: datetime, value: float | None, vvalue: str | None = None) -> None:
        """Store a revised value at an existing instant: ``Latest`` returns it with QualityDetail 202 (72198)."""
        us = to_micros(time)
        with self._write_lock, closing(self.connect()) as conn:
            (revision,) = conn.execute(
                "SELECT COALESCE(MAX(Revision), -1) + 1 FROM Points WHERE TagName = ? AND Time = ?", (tag, us)
            ).fetchone()
            conn.execute(
                "INSERT INTO Points VALUES (?, ?, ?, ?, 0, ?, 192, ?)",
                (tag, us, value, vvalue if vvalue is not None else _text(value), QD_REVISED, revision),
            )

    def load_simulation(self, config) -> dict[str, int]:
        """Fill the store from the project's simulator (``airflow_backfill_provider.testing``): its
        TagRef and its History rows as stored points. Returns the stored points per tag."""
        import pyarrow.compute as pc

        from airflow_backfill_provider.historian.schema import TAG_TYPES
        from airflow_backfill_provider.testing.generation import iter_history_batches, plan_tags

        tags = plan_tags(config)
        for t in tags:
            self.add_tag(
                t.name,
                TAG_TYPES[t.tag_type],
                description=t.description,
                key=t.key,
                unit=t.unit,
                interpolation="Linear" if t.tag_type == "analog" else "StairStep",
            )
        counts: dict[str, int] = {}
        with self._write_lock, closing(self.connect()) as conn:
            conn.execute("BEGIN")
            for table in iter_history_batches(config, tags):
                micros = pc.cast(table.column("DateTime"), "int64").to_pylist()
                cols = [
                    table.column(n).to_pylist()
                    for n in ("TagName", "Value", "VValue", "Quality", "QualityDetail", "OPCQuality")
                ]
                rows = [
                    (tag, us, v, vv, q, qd, opc, 0)
                    for us, (tag, v, vv, q, qd, opc) in zip(micros, zip(*cols, strict=True), strict=True)
                ]
                conn.executemany("INSERT INTO Points VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                for tag in cols[0]:
                    counts[tag] = counts.get(tag, 0) + 1
            conn.execute("COMMIT")
        return counts

    # -- reading ---------------------------------------------------------------------------------

    def tag_info(self, conn: sqlite3.Connection, tags: Sequence[str]) -> dict[str, tuple]:
        """``{name: (wwTagKey, Unit, InterpolationType)}`` of the tags TagRef knows."""
        info = {}
        for i in range(0, len(tags), 500):
            part = list(tags[i : i + 500])
            marks = ",".join("?" * len(part))
            for name, key, unit, interp in conn.execute(
                f"SELECT TagName, wwTagKey, Unit, InterpolationType FROM TagRef WHERE TagName IN ({marks})",
                part,
            ):
                info[name] = (key, unit, interp)
        return info

    def points(
        self, conn: sqlite3.Connection, tag: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Point]:
        """The tag's stored points (every revision) from the last instant before ``start`` (the one an
        initial value is made of) to ``end`` inclusive; all of them without bounds."""
        lo, hi = -(2**62), 2**62
        if start is not None:
            (before,) = conn.execute(
                "SELECT MAX(Time) FROM Points WHERE TagName = ? AND Time < ?", (tag, to_micros(start))
            ).fetchone()
            lo = to_micros(start) if before is None else before
        if end is not None:
            hi = to_micros(end)
        return [
            Point(from_micros(us), v, vv, q, qd, opc, rev)
            for us, v, vv, q, qd, opc, rev in conn.execute(
                "SELECT Time, Value, VValue, Quality, QualityDetail, OPCQuality, Revision FROM Points "
                "WHERE TagName = ? AND Time BETWEEN ? AND ? ORDER BY Time, Revision",
                (tag, lo, hi),
            )
        ]

    def stored(self, tags: Sequence[str] | None = None, *, version: str = "Latest") -> list[tuple]:
        """The stored values, one per (tag, instant) of ``version``: ``(tag, naive UTC time, Value,
        VValue, Quality, QualityDetail)`` sorted; what an exact load must hold (counted outside the
        code under test)."""
        from tests.support.aveva.retrieval import select_version

        with closing(self.connect()) as conn:
            names = (
                list(tags) if tags is not None else [r[0] for r in conn.execute("SELECT TagName FROM TagRef")]
            )
            out = []
            for tag in names:
                for p in select_version(self.points(conn, tag), version):
                    out.append(
                        (tag, p.time.replace(tzinfo=None), p.value, p.vvalue, p.quality, p.quality_detail)
                    )
        return sorted(out, key=lambda r: (r[0], r[1]))


def _text(value: float | None) -> str | None:
    return None if value is None else repr(float(value))
