"""The simulated historian's data: tags, and ``History`` rows generated column-wise as Arrow tables.

Output is a pure function of :class:`SimulatorConfig`: the same seed gives the same rows whatever
the slice size. Timestamps are UTC wall time in timezone-naive columns. Each tag samples every
``rate`` seconds from ``start`` plus a per-tag phase of 1 ms to ``rate`` (never zero), so regular
samples almost never fall on round instants; ``boundary_every`` / ``boundary_instants`` add rows
exactly on chosen instants (e.g. every midnight) so interval-edge handling can be tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.schema import HISTORY_COLUMNS, TAG_TYPES

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

# Quality codes (AVEVA Historian): Quality 0 good, 1 bad (stored values; 133 marks an initial value,
# which a query makes and the Historian never stores); QualityDetail 192 good, 24 bad (comm
# failure), 44 first good value after a gap; OPCQuality 192 good, 24 bad (comm failure).
_GOOD, _BAD = 0, 1
_QD_GOOD, _QD_BAD, _QD_AFTER_GAP, _OPC_GOOD, _OPC_BAD = 192, 24, 44, 192, 24
_BLOCK_SAMPLES = 8192  # samples per (tag, block) generation unit; fixed so output ignores slice size
# Columns that are the same on every row, as a Full/Latest query in UTC returns them.
CONSTANT_COLUMNS: Mapping[str, object] = {
    "wwRowCount": 0,
    "wwResolution": 0,
    "wwEdgeDetection": "None",
    "wwRetrievalMode": "Full",
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
NULL_COLUMNS = tuple(
    c.name for c in HISTORY_COLUMNS if c.name not in _GENERATED and c.name not in CONSTANT_COLUMNS
)
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
    for table, _ in history_slices(config, list(tags) if tags is not None else plan_tags(config)):
        yield table


def tagref_rows(tags: Sequence[SimTag]) -> list[dict]:
    """``TagRef`` rows (a few per tag set, so plain dicts are fine here)."""
    return [{"TagName": t.name, "TagType": TAG_TYPES[t.tag_type], "Description": t.description} for t in tags]


def _ms(dt: datetime) -> int:
    """Milliseconds since the epoch of a datetime (naive means UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


def _rate_ms(config: SimulatorConfig) -> int:
    return round(config.rate * 1000)


def _boundaries_ms(config: SimulatorConfig) -> np.ndarray:
    start, end = _ms(config.start), _ms(config.end)
    instants = {_ms(b) for b in config.boundary_instants}
    if config.boundary_every is not None:
        step = int(config.boundary_every.total_seconds() * 1000)
        instants.update(range(-(-start // step) * step, end, step))
    return np.array(sorted(b for b in instants if start <= b < end), dtype=np.int64)


def history_slices(config: SimulatorConfig, tags: list[SimTag]) -> Iterator[tuple[pa.Table, dict]]:
    """Yield ``(History slice, stats)``: (tag, block) units generated in time order, grouped into slices.

    ``stats`` holds the slice's rows per tag index (``per_tag``), its ``boundary`` rows and its
    ``first``/``last`` instants in epoch milliseconds.
    """
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
        if c.name in CONSTANT_COLUMNS:
            columns.append(pa.repeat(pa.scalar(CONSTANT_COLUMNS[c.name], _ARROW[c.kind]), n))
        elif c.name in NULL_COLUMNS:
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
