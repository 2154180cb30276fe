"""A Wonderware/AVEVA Historian simulator: ``TagRef`` and ``History`` in any SQLAlchemy database.

The tests (PostgreSQL), the demo (SQLite) and the Wonderware hook share this module: the hook builds
its source queries from :func:`history_tables`, so the simulated schema is the one the hook reads.

Data is generated column-wise with numpy and loaded as Arrow slices (ADBC bulk ingest, PostgreSQL
COPY, or SQLAlchemy executemany as the last resort), so a million rows take seconds and memory
stays bounded by one slice. Output is a pure function of :class:`SimulatorConfig`: the same seed
gives the same rows whatever the slice size. No Airflow import.

Timestamps are UTC wall time in timezone-naive columns. Each tag samples every ``rate`` seconds
from ``start`` plus a per-tag phase of 1 ms to ``rate`` (never zero), so regular samples
almost never fall on round instants; ``boundary_every`` / ``boundary_instants`` add rows exactly on
chosen instants (e.g. every midnight) so interval-edge handling can be tested.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.queries import history_tables
from airflow_backfill_provider.historian.schema import HISTORY_COLUMNS, TAG_TYPES
from airflow_backfill_provider.utils import parse_duration, to_utc

log = logging.getLogger(__name__)

SIMULATED_TYPES = ("analog", "discrete", "string")
DEFAULT_MIX: Mapping[str, float] = {"analog": 0.6, "discrete": 0.2, "string": 0.2}
# Names that must survive quoting, LIKE escaping and glob matching untouched.
HOSTILE_TAG_NAMES = ("O'Brien\"; DROP TABLE x --", "100%_Done [Line-1]", "Ünïcödé Zone °C")
# System tags a real Historian records about itself; discovery excludes ``Sys%`` by default.
SYSTEM_TAGS = ("SysTimeSec", "SysTimeMin", "SysTimeHour", "SysPerfCPUTotal", "SysDataAcqOverallItemsPerSec")
STRING_STATES = ("RUNNING", "STOPPED", "IDLE", "STARTING", "FAULT", "MAINTENANCE")

_ANALOG_KINDS = (  # name, unit, base, amplitude
    ("Temperature", "degC", 60.0, 15.0),
    ("Pressure", "bar", 6.0, 1.5),
    ("Flow", "m3/h", 120.0, 40.0),
    ("Level", "%", 50.0, 30.0),
    ("Speed", "rpm", 1450.0, 200.0),
)
_DISCRETE_KINDS = ("MotorRunning", "ValveOpen", "PumpOn", "AlarmActive")
_STRING_KINDS = ("MachineState", "BatchPhase", "OperatingMode")

# Quality codes (AVEVA Historian): Quality 0 good, 1 bad, 133 initial value of a delta request;
# QualityDetail 192 good, 24 bad (comm failure), 44 first good value after a gap;
# OPCQuality 192 good, 24 bad (comm failure).
_GOOD, _BAD, _INITIAL = 0, 1, 133
_QD_GOOD, _QD_BAD, _QD_AFTER_GAP, _OPC_GOOD, _OPC_BAD = 192, 24, 44, 192, 24
_BLOCK_SAMPLES = 8192  # samples per (tag, block) generation unit; fixed so output ignores slice size
# Columns that are the same on every row, as a Delta/Latest query in UTC returns them.
_CONSTANTS: Mapping[str, object] = {
    "wwRowCount": 0,
    "wwResolution": 0,
    "wwEdgeDetection": "None",
    "wwRetrievalMode": "Delta",
    "wwTimeDeadband": 0,
    "wwValueDeadband": 0.0,
    "wwTimeZone": "UTC",
    "wwVersion": "Latest",
    "wwCycleCount": 0,
    "wwTimeStampRule": "Start",
    "wwQualityRule": "Extended",
    "wwStateCalc": "None",
    "wwFilter": "NoFilter",
    "wwValueSelector": "Auto",
    "wwMaxStates": 10,
}
# Columns the generator fills per row; all others are constants (above) or always NULL.
_GENERATED = (
    "DateTime",
    "TagName",
    "Value",
    "VValue",
    "Quality",
    "QualityDetail",
    "OPCQuality",
    "wwTagKey",
    "wwInterpolationType",
    "PercentGood",
    "StartDateTime",
    "wwUnit",
)
_ALWAYS_NULL = tuple(c.name for c in HISTORY_COLUMNS if c.name not in _GENERATED and c.name not in _CONSTANTS)
_ARROW = {"datetime": pa.timestamp("us"), "str": pa.string(), "float": pa.float64(), "int": pa.int64()}


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate. ``start`` inclusive, ``end`` exclusive, naive datetimes are UTC.

    :param tags: number of non-system tags, split by ``mix`` (weights per tag type)
    :param rate: seconds between two samples of one tag
    :param sys_tags: number of ``Sys*`` system tags added on top (at most len(SYSTEM_TAGS))
    :param boundary_every: add a row per tag on every multiple of this period (from the Unix epoch,
        so ``1d`` means every UTC midnight) inside [start, end)
    :param boundary_instants: further instants that get a row per tag, when inside [start, end)
    :param hostile_tags: rename the first tags to :data:`HOSTILE_TAG_NAMES`
    :param slice_rows: rows per generated and loaded slice (bounds memory)
    """

    start: datetime
    end: datetime
    tags: int = 40
    rate: float = 60.0
    seed: int = 1
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    sys_tags: int = 3
    boundary_every: timedelta | None = None
    boundary_instants: tuple[datetime, ...] = ()
    hostile_tags: bool = False
    slice_rows: int = 200_000

    def __post_init__(self) -> None:
        if _ms(self.end) <= _ms(self.start):
            raise ConfigurationError(f"end {self.end} must be after start {self.start}.")
        if round(self.rate * 1000) < 1:
            raise ConfigurationError(f"rate {self.rate!r} must be at least 0.001 seconds.")
        if self.tags < 0 or not 0 <= self.sys_tags <= len(SYSTEM_TAGS):
            raise ConfigurationError(
                f"tags {self.tags} must be >= 0 and sys_tags {self.sys_tags} in 0..{len(SYSTEM_TAGS)}."
            )
        unknown = set(self.mix) - set(SIMULATED_TYPES)
        if unknown or any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ConfigurationError(
                f"mix {dict(self.mix)} must give non-negative weights to {SIMULATED_TYPES}, not all zero."
            )
        if self.slice_rows < 1:
            raise ConfigurationError(f"slice_rows {self.slice_rows} must be positive.")


@dataclass(frozen=True)
class SimTag:
    """One simulated tag and the parameters of its signal."""

    index: int
    name: str
    tag_type: str  # analog, discrete, string
    system: bool
    key: int  # wwTagKey
    unit: str | None
    description: str
    phase_ms: int
    base: float = 0.0
    amplitude: float = 0.0
    period_s: float = 3600.0
    noise: float = 0.0


@dataclass
class SimulationSummary:
    """What a simulation wrote. ``rows``/``tags`` are per tag type, Sys tags counted as ``system``."""

    url: str
    loader: str
    tags: dict[str, int]
    rows: dict[str, int]
    total_rows: int
    boundary_rows: int
    null_values: int
    first: str | None
    last: str | None
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def plan_tags(config: SimulatorConfig) -> list[SimTag]:
    """The tags of a simulation, in a deterministic order (types interleaved, Sys tags last)."""
    weights = {t: float(config.mix.get(t, 0.0)) for t in SIMULATED_TYPES}
    total = sum(weights.values())
    exact = {t: config.tags * w / total for t, w in weights.items()}
    counts = {t: int(v) for t, v in exact.items()}
    for t in sorted(exact, key=lambda t: exact[t] - counts[t], reverse=True)[
        : config.tags - sum(counts.values())
    ]:
        counts[t] += 1  # largest remainder, so the counts add up to config.tags
    order: list[str] = []  # interleaved, so the first tags (the hostile names) cover every type
    for round_ in range(max(counts.values(), default=0)):
        order += [t for t in SIMULATED_TYPES if counts[t] > round_]
    rate_ms = _rate_ms(config)
    tags = []
    for i, tag_type in enumerate(order + ["analog"] * config.sys_tags):
        rng = np.random.default_rng([config.seed, 0, i])
        phase = int(rng.integers(1, rate_ms)) if rate_ms > 1 else 0
        system = i >= config.tags
        unit = None
        base = amplitude = noise = 0.0
        if system:
            name = SYSTEM_TAGS[i - config.tags]
            base, amplitude, noise, unit = 35.0, 20.0, 5.0, "%"
        elif tag_type == "analog":
            kind, unit, base, amplitude = _ANALOG_KINDS[int(rng.integers(len(_ANALOG_KINDS)))]
            base *= rng.uniform(0.8, 1.2)
            noise = amplitude * rng.uniform(0.01, 0.05)
            name = f"{kind}_{i + 1:03d}"
        else:
            kinds = _DISCRETE_KINDS if tag_type == "discrete" else _STRING_KINDS
            name = f"{kinds[int(rng.integers(len(kinds)))]}_{i + 1:03d}"
        if config.hostile_tags and i < min(len(HOSTILE_TAG_NAMES), config.tags):
            name = HOSTILE_TAG_NAMES[i]
        tags.append(
            SimTag(
                index=i,
                name=name,
                tag_type=tag_type,
                system=system,
                key=i + 1,
                unit=unit,
                description=f"Simulated {'system' if system else tag_type} tag",
                phase_ms=phase,
                base=round(base, 3),
                amplitude=amplitude,
                period_s=float(rng.uniform(1800, 86400)),
                noise=noise,
            )
        )
    return tags


def iter_history_batches(config: SimulatorConfig, tags: Sequence[SimTag] | None = None) -> Iterator[pa.Table]:
    """Yield the ``History`` rows as Arrow tables of about ``config.slice_rows`` rows each."""
    for table, _ in _slices(config, list(tags) if tags is not None else plan_tags(config)):
        yield table


def tagref_rows(tags: Sequence[SimTag]) -> list[dict]:
    """``TagRef`` rows (a few per tag set, so plain dicts are fine here)."""
    return [{"TagName": t.name, "TagType": TAG_TYPES[t.tag_type], "Description": t.description} for t in tags]


def simulate(
    url: str,
    config: SimulatorConfig,
    *,
    replace: bool = False,
    schema: str | None = None,
    method: str = "auto",
) -> SimulationSummary:
    """Create ``TagRef``/``History`` at ``url`` if missing (``replace`` drops them first) and load.

    :param method: ``auto`` (fastest available), ``adbc``, ``copy`` (PostgreSQL only) or ``executemany``
    """
    began = time.perf_counter()
    tags = plan_tags(config)
    engine = sa.create_engine(url)
    try:
        # A History created here has the constant columns as server defaults, so only the varying
        # columns travel: that halves the load time. An existing table gets every column.
        tagref, history = history_tables(sa.MetaData(), schema, _CONSTANTS)
        new_history = _create_tables(engine, tagref, history, replace)
        omit = [*_CONSTANTS, *_ALWAYS_NULL] if new_history else []
        with engine.begin() as conn:
            existing = set(conn.scalars(sa.select(tagref.c.TagName)))
            missing = [r for r in tagref_rows(tags) if r["TagName"] not in existing]
            if missing:
                conn.execute(tagref.insert(), missing)
        per_tag = np.zeros(len(tags), dtype=np.int64)
        nulls = boundary = 0
        first = last = None
        with _history_sink(engine, history, method) as (loader, write):
            for table, stats in _slices(config, tags):
                write(table.drop_columns(omit))
                per_tag += stats["per_tag"]
                nulls += table.column("Value").null_count
                boundary += stats["boundary"]
                first = min(first, stats["first"]) if first is not None else stats["first"]
                last = max(last, stats["last"]) if last is not None else stats["last"]
                log.debug("Loaded %d rows (%d so far)", table.num_rows, int(per_tag.sum()))
        if new_history:  # indexing after the bulk load is much cheaper than during it
            with engine.begin() as conn:
                for index in history.indexes:
                    index.create(conn, checkfirst=True)
    finally:
        engine.dispose()
    groups = ["system" if t.system else t.tag_type for t in tags]
    return SimulationSummary(
        url=engine.url.render_as_string(hide_password=True),
        loader=loader,
        tags={g: groups.count(g) for g in dict.fromkeys(groups)},
        rows={
            g: int(sum(n for n, h in zip(per_tag, groups, strict=True) if h == g))
            for g in dict.fromkeys(groups)
        },
        total_rows=int(per_tag.sum()),
        boundary_rows=boundary,
        null_values=nulls,
        first=_iso(first),
        last=_iso(last),
        seconds=round(time.perf_counter() - began, 3),
    )


# --- generation ---------------------------------------------------------------------------------


def _ms(dt: datetime) -> int:
    """Milliseconds since the epoch of a datetime (naive means UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def _rate_ms(config: SimulatorConfig) -> int:
    return round(config.rate * 1000)


def _boundaries_ms(config: SimulatorConfig) -> np.ndarray:
    start, end = _ms(config.start), _ms(config.end)
    instants = {_ms(b) for b in config.boundary_instants}
    if config.boundary_every is not None:
        step = int(config.boundary_every.total_seconds() * 1000)
        instants.update(range(-(-start // step) * step, end, step))
    return np.array(sorted(b for b in instants if start <= b < end), dtype=np.int64)


def _slices(config: SimulatorConfig, tags: list[SimTag]) -> Iterator[tuple[pa.Table, dict]]:
    """Generate (tag, block) units in time order and group them into slices."""
    start, end, rate = _ms(config.start), _ms(config.end), _rate_ms(config)
    window = _BLOCK_SAMPLES * rate
    boundaries = _boundaries_ms(config)
    carry: dict[int, int] = {}  # discrete/string state at the end of the previous block
    pending: list[tuple] = []
    pending_rows = 0
    for block in range(math.ceil((end - start) / window)):
        lo, hi = start + block * window, min(start + (block + 1) * window, end)
        for tag in tags:
            first_k = max(0, -(-(lo - start - tag.phase_ms) // rate))
            grid = (
                start + tag.phase_ms + rate * np.arange(first_k, _BLOCK_SAMPLES * (block + 1), dtype=np.int64)
            )
            grid = grid[(grid >= lo) & (grid < hi)]
            extra = boundaries[(boundaries >= lo) & (boundaries < hi)]
            extra = extra[(extra - start - tag.phase_ms) % rate != 0]  # skip instants already sampled
            times = np.sort(np.concatenate([grid, extra])) if len(extra) else grid
            if len(times):
                unit = _generate(config, tag, block, times, carry)
                pending.append((tag.index, times, len(extra), *unit))
                pending_rows += len(times)
            if pending_rows >= config.slice_rows:
                yield _to_arrow(tags, pending)
                pending, pending_rows = [], 0
    if pending:
        yield _to_arrow(tags, pending)


def _generate(config: SimulatorConfig, tag: SimTag, block: int, t: np.ndarray, carry: dict) -> tuple:
    """Value, VValue code, Quality, QualityDetail, OPCQuality, PercentGood for one tag and block."""
    rng = np.random.default_rng([config.seed, 1, tag.index, block])
    n = len(t)
    quality = np.full(n, _GOOD, dtype=np.int64)
    detail = np.full(n, _QD_GOOD, dtype=np.int64)
    vcode = np.full(n, -1, dtype=np.int64)  # -1: VValue is the value as text (or NULL)
    if tag.system and tag.name.startswith("SysTime"):
        divisor, modulo = {"SysTimeSec": (1000, 60), "SysTimeMin": (60_000, 60)}.get(
            tag.name, (3_600_000, 24)
        )
        value = ((t // divisor) % modulo).astype(np.float64)
    elif tag.tag_type == "analog":
        wave = np.sin(2 * np.pi * (t / 1000.0) / tag.period_s + tag.index)
        value = np.round(tag.base + tag.amplitude * wave + rng.normal(0.0, tag.noise or 1e-9, n), 3)
        # Outages: runs of bad rows (Value NULL), then a "first good value after a gap".
        starts = np.flatnonzero(rng.random(n) < 0.002)
        edges = np.zeros(n + 1, dtype=np.int64)
        np.add.at(edges, starts, 1)
        np.add.at(edges, np.minimum(starts + rng.integers(3, 30, len(starts)), n), -1)
        bad = np.cumsum(edges[:n]) > 0
        value[bad] = np.nan
        quality[bad] = _BAD
        detail[bad] = _QD_BAD
        detail[1:][bad[:-1] & ~bad[1:]] = _QD_AFTER_GAP
    else:
        p_change, states = (0.01, 2) if tag.tag_type == "discrete" else (0.005, len(STRING_STATES))
        initial = carry[tag.index] if tag.index in carry else int(rng.integers(states))
        change = rng.random(n) < p_change
        if tag.tag_type == "discrete":  # 0/1 steps: every change flips the state
            state = (initial + np.cumsum(change)) % 2
            value = state.astype(np.float64)
        else:  # a new state drawn at each change, held until the next one
            drawn = rng.integers(0, states, n)
            last_change = np.maximum.accumulate(np.where(change, np.arange(n), -1))
            state = np.where(last_change >= 0, drawn[np.maximum(last_change, 0)], initial)
            value = np.full(n, np.nan)
            vcode = state.astype(np.int64)
        carry[tag.index] = int(state[-1])
    if block == 0:
        quality[0] = _INITIAL if quality[0] == _GOOD else quality[0]
    opc = np.where(quality == _BAD, _OPC_BAD, _OPC_GOOD)
    return value, vcode, quality, detail, opc


def _to_arrow(tags: list[SimTag], units: list[tuple]) -> tuple[pa.Table, dict]:
    index = np.concatenate([np.full(len(u[1]), u[0], dtype=np.int64) for u in units])
    times, value, vcode, quality, detail, opc = (
        np.concatenate([u[i] for u in units]) for i in (1, 3, 4, 5, 6, 7)
    )
    null = np.isnan(value)
    ts = pa.array(times * 1000, pa.timestamp("us"))
    value_arr = pa.array(value, mask=null)
    is_string = vcode >= 0
    vvalue = pc.if_else(
        pa.array(is_string),
        pa.array(STRING_STATES).take(pa.array(np.maximum(vcode, 0))),
        pc.cast(value_arr, pa.string()),
    )
    idx = pa.array(index)
    generated = {  # keys in _GENERATED order
        "DateTime": ts,
        "TagName": pa.array([t.name for t in tags]).take(idx),
        "Value": value_arr,
        "VValue": vvalue,
        "Quality": pa.array(quality),
        "QualityDetail": pa.array(detail),
        "OPCQuality": pa.array(opc),
        "wwTagKey": pa.array(np.array([t.key for t in tags], dtype=np.int64)[index]),
        "wwInterpolationType": pa.array(
            ["Linear" if t.tag_type == "analog" else "StairStep" for t in tags]
        ).take(idx),
        "PercentGood": pa.array(np.where(null & ~is_string, 0.0, 100.0)),
        "StartDateTime": ts,
        "wwUnit": pa.array([t.unit for t in tags], pa.string()).take(idx),
    }
    n = len(times)
    columns = []
    for c in HISTORY_COLUMNS:
        if c.name in _CONSTANTS:
            columns.append(pa.repeat(pa.scalar(_CONSTANTS[c.name], _ARROW[c.kind]), n))
        elif c.name in _ALWAYS_NULL:
            columns.append(pa.nulls(n, _ARROW[c.kind]))
        else:
            columns.append(generated[c.name])
    schema = pa.schema([pa.field(c.name, _ARROW[c.kind], nullable=c.nullable) for c in HISTORY_COLUMNS])
    stats = {
        "per_tag": np.bincount(index, minlength=len(tags)),
        "boundary": sum(u[2] for u in units),
        "first": int(times.min()),
        "last": int(times.max()),
    }
    return pa.Table.from_arrays(columns, schema=schema), stats


# --- loading ------------------------------------------------------------------------------------


def _create_tables(engine: sa.Engine, tagref: sa.Table, history: sa.Table, replace: bool) -> bool:
    """Create the tables (History without its index, added after the load); True if History is new."""
    with engine.begin() as conn:
        if replace:
            history.drop(conn, checkfirst=True)
            tagref.drop(conn, checkfirst=True)
        tagref.create(conn, checkfirst=True)
        if sa.inspect(conn).has_table(history.name, schema=history.schema):
            return False
        conn.execute(sa.schema.CreateTable(history))
        return True


@contextmanager
def _history_sink(engine: sa.Engine, history: sa.Table, method: str):
    """Yield ``(loader name, write(arrow_table))``; everything is committed at the end, or nothing."""
    backend, url = engine.dialect.name, engine.url
    path = url.database
    if method == "auto":
        method = "executemany"
        if backend == "postgresql" and _importable("adbc_driver_postgresql"):
            method = "adbc"
        elif backend == "postgresql" and _importable("psycopg"):
            method = "copy"
        elif backend == "sqlite" and path and path != ":memory:" and history.schema is None:
            method = "adbc" if _importable("adbc_driver_sqlite") else "executemany"
    if method == "adbc" and backend == "postgresql":
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(_libpq_uri(url)) as conn, conn.cursor() as cur:
            yield (
                "adbc",
                lambda t: cur.adbc_ingest(history.name, t, mode="append", db_schema_name=history.schema),
            )
            conn.commit()
    elif method == "adbc" and backend == "sqlite":
        import adbc_driver_sqlite.dbapi as adbc

        with adbc.connect(path) as conn, conn.cursor() as cur:
            yield "adbc", lambda t: cur.adbc_ingest(history.name, _sqlite_times(t), mode="append")
            conn.commit()
    elif method == "copy" and backend == "postgresql":
        import psycopg
        import pyarrow.csv as pacsv

        preparer = engine.dialect.identifier_preparer
        options = pacsv.WriteOptions(include_header=False)

        def copy(table: pa.Table) -> None:
            columns = ", ".join(preparer.quote(name) for name in table.column_names)
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, options)  # strings quoted, NULLs empty: PostgreSQL's CSV
            with cur.copy(f"COPY {preparer.format_table(history)} ({columns}) FROM STDIN (FORMAT csv)") as cp:
                cp.write(memoryview(sink.getvalue()))

        with psycopg.connect(_libpq_uri(url)) as conn, conn.cursor() as cur:
            yield "copy", copy
    elif method == "executemany":
        with engine.begin() as conn:

            def insert(table: pa.Table) -> None:
                for batch in table.to_batches(max_chunksize=20_000):
                    conn.execute(history.insert(), batch.to_pylist())

            yield "executemany", insert
    else:
        raise ConfigurationError(f"Load method {method!r} is not available for {backend}; use 'auto'.")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _libpq_uri(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_times(table: pa.Table) -> pa.Table:
    """SQLite has no timestamp type: store the text SQLAlchemy's DateTime writes and compares.

    A cast of a naive microsecond timestamp gives exactly that: ``2025-01-01 00:00:00.000000``.
    """
    for i, name in enumerate(table.column_names):
        if pa.types.is_timestamp(table.schema.field(i).type):
            field_ = pa.field(name, pa.string(), nullable=table.schema.field(i).nullable)
            table = table.set_column(i, field_, pc.cast(table.column(i), pa.string()))
    return table


# --- CLI ----------------------------------------------------------------------------------------


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
    parser = argparse.ArgumentParser(prog="wonderware-simulator", description=__doc__.split("\n")[0])
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
    parser.add_argument("--rate", type=float, default=60.0, help="seconds between samples of a tag")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--boundary-rows", action="store_true", help="add a row per tag on every boundary")
    parser.add_argument("--boundary-every", default="1d", help="boundary period with --boundary-rows (1d)")
    parser.add_argument(
        "--hostile-tags", action="store_true", help=f"rename the first tags {HOSTILE_TAG_NAMES}"
    )
    parser.add_argument("--replace", action="store_true", help="drop and recreate TagRef and History")
    parser.add_argument("--schema", default=None, help="database schema of the tables")
    parser.add_argument("--method", default="auto", choices=("auto", "adbc", "copy", "executemany"))
    parser.add_argument("--slice-rows", type=int, default=200_000)
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
