"""The AVEVA/Wonderware ``History`` and ``TagRef`` schemas, described once.

Everything that needs the column list (the SQL source query, the simulator, the Arrow schema of a
transfer, the ClickHouse DDL) derives it from :data:`HISTORY_COLUMNS`, so the 33 columns cannot drift
apart between source and target. A deployment may load a subset of them (:func:`history_columns`,
the ``WONDERWARE_HISTORY_COLUMNS`` setting); a selection always keeps the schema's order. No
Airflow import: unit-tested directly.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.utils import quote_identifier

# History's retrieval options when a load sets none (why: historian/queries.py): the newest version
# of revised values, instants in UTC.
DEFAULT_VERSION = "Latest"
DEFAULT_TIME_ZONE = "UTC"
# Rows per Arrow batch read from History: large enough for the readers' speed, small enough that a
# batch of all 33 columns stays a few tens of MB.
DEFAULT_BATCH_SIZE = 50_000
# SQL Server accepts at most 2,100 parameters per statement; each tag of a History query is one.
MAX_TAGS_PER_QUERY = 2000

# A column's kind decides its type in every system. "datetime" values are UTC instants.
KINDS = ("datetime", "str", "float", "int")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = True
    # ClickHouse LowCardinality, for strings with a handful of distinct values: dictionary encoding
    # makes them cheaper to load, filter and group by (figures in docs/performance.md).
    low_cardinality: bool = False


HISTORY_COLUMNS: tuple[Column, ...] = (
    Column("DateTime", "datetime", nullable=False),
    Column("TagName", "str", nullable=False, low_cardinality=True),
    Column("Value", "float"),
    Column("VValue", "str"),
    Column("Quality", "int"),
    Column("QualityDetail", "int"),
    Column("OPCQuality", "int"),
    Column("wwTagKey", "int"),
    Column("wwRowCount", "int"),
    Column("wwResolution", "int"),
    Column("wwEdgeDetection", "str", low_cardinality=True),
    Column("wwRetrievalMode", "str", low_cardinality=True),
    Column("wwTimeDeadband", "int"),
    Column("wwValueDeadband", "float"),
    Column("wwTimeZone", "str", low_cardinality=True),
    Column("wwVersion", "str", low_cardinality=True),
    Column("wwCycleCount", "int"),
    Column("wwTimeStampRule", "str", low_cardinality=True),
    Column("wwInterpolationType", "str", low_cardinality=True),
    Column("wwQualityRule", "str", low_cardinality=True),
    Column("wwStateCalc", "str", low_cardinality=True),
    Column("StateTime", "float"),
    Column("PercentGood", "float"),
    Column("wwParameters", "str"),
    Column("StartDateTime", "datetime"),
    Column("SourceTag", "str", low_cardinality=True),
    Column("SourceServer", "str", low_cardinality=True),
    Column("wwFilter", "str", low_cardinality=True),
    Column("wwValueSelector", "str", low_cardinality=True),
    Column("wwMaxStates", "int"),
    Column("wwOption", "str", low_cardinality=True),
    Column("wwExpression", "str"),
    Column("wwUnit", "str", low_cardinality=True),
)
HISTORY_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in HISTORY_COLUMNS)
# Every selection holds these: each window, count, replacement and sync append is keyed on
# (TagName, DateTime), and the ClickHouse table is partitioned by DateTime and ordered by both.
REQUIRED_HISTORY_COLUMNS: tuple[str, ...] = ("DateTime", "TagName")

# TagRef holds far more columns in a real Historian; these are the ones discovery reads.
TAGREF_COLUMNS: tuple[Column, ...] = (
    Column("TagName", "str", nullable=False),
    Column("TagType", "int", nullable=False),
    Column("Description", "str"),
)

# TagType codes of AVEVA Historian's TagRef table.
TAG_TYPES: dict[str, int] = {
    "analog": 1,
    "discrete": 2,
    "string": 3,
    "complex": 4,
    "event": 5,
    "summary": 7,
}
DEFAULT_TAG_TYPES: tuple[str, ...] = ("analog", "discrete", "string")

DEFAULT_TABLE = "WonderwareHistory"

_CLICKHOUSE_TYPES = {
    "datetime": "DateTime64(6, 'UTC')",
    "str": "String",
    "float": "Float64",
    "int": "Int64",
}


def tag_type_codes(names: list[str] | tuple[str, ...]) -> list[int]:
    """Map tag type names (``analog``, ``discrete``, ...) to TagRef codes; unknown names are an error."""
    if not names:
        raise ValueError(f"No tag types selected; choose from {sorted(TAG_TYPES)}.")
    unknown = [n for n in names if str(n).lower() not in TAG_TYPES]
    if unknown:
        raise ValueError(f"Unknown tag type(s) {unknown}; choose from {sorted(TAG_TYPES)}.")
    return sorted({TAG_TYPES[str(n).lower()] for n in names})


def history_columns(names: str | Sequence[str] | None = None) -> tuple[Column, ...]:
    """The History columns to load: ``names`` checked against :data:`HISTORY_COLUMNS`, in schema order.

    :param names: column names, as a sequence or one comma-separated string; ``None`` or empty means
        all 33. Names are exact (case included); repeats count once; the order written does not
        matter, the selection always follows the schema. :data:`REQUIRED_HISTORY_COLUMNS` must be in it.
    :raises ConfigurationError: naming the unknown names (with the closest column name) or the
        missing required ones.
    """
    if names is None:
        return HISTORY_COLUMNS
    items = names.split(",") if isinstance(names, str) else list(names)
    if not all(isinstance(n, str) for n in items):
        raise ConfigurationError(f"History column names must be strings, got {names!r}.")
    wanted = [n.strip() for n in items]
    if not any(wanted):
        return HISTORY_COLUMNS
    if "" in wanted:
        raise ConfigurationError(
            f"Empty History column name in {names!r}: separate the names with single commas."
        )
    unknown = [n for n in dict.fromkeys(wanted) if n not in HISTORY_COLUMN_NAMES]
    if unknown:
        raise ConfigurationError(
            f"Unknown History column(s) {', '.join(_with_suggestion(n) for n in unknown)}: "
            f"names are exact and case-sensitive; choose from {', '.join(HISTORY_COLUMN_NAMES)}."
        )
    missing = [n for n in REQUIRED_HISTORY_COLUMNS if n not in wanted]
    if missing:
        raise ConfigurationError(
            f"The History columns {names!r} lack {', '.join(repr(n) for n in missing)}: every "
            f"selection needs {' and '.join(REQUIRED_HISTORY_COLUMNS)} (each window, count and "
            "replacement is keyed on them). Add them."
        )
    chosen = set(wanted)
    return tuple(c for c in HISTORY_COLUMNS if c.name in chosen)


def _with_suggestion(name: str) -> str:
    by_lower = {n.lower(): n for n in HISTORY_COLUMN_NAMES}
    close = [by_lower[name.lower()]] if name.lower() in by_lower else []
    close = close or difflib.get_close_matches(name, HISTORY_COLUMN_NAMES, n=1, cutoff=0.6)
    return f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name)


def column_names(columns: Sequence[Column]) -> tuple[str, ...]:
    return tuple(c.name for c in columns)


def clickhouse_column_type(column: Column) -> str:
    """The ClickHouse type of a History column, as the table's DDL declares it."""
    ch_type = _CLICKHOUSE_TYPES[column.kind]
    ch_type = f"Nullable({ch_type})" if column.nullable else ch_type
    return f"LowCardinality({ch_type})" if column.low_cardinality else ch_type


def clickhouse_history_ddl(table: str = DEFAULT_TABLE, columns: Sequence[Column] = HISTORY_COLUMNS) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the history table, with ``columns`` (default all 33).

    Partitioned by month and ordered by (TagName, DateTime). Deliberately no TTL: the seed's 90-day
    TTL would silently delete the history a backfill just loaded.
    """
    _check_required(columns)
    cols = [f"    `{c.name}` {clickhouse_column_type(c)}" for c in columns]
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(table)}\n(\n"
        + ",\n".join(cols)
        + "\n)\nENGINE = MergeTree\nPARTITION BY toYYYYMM(DateTime)\nORDER BY (TagName, DateTime)"
    )


def _check_required(columns: Sequence[Column]) -> None:
    names = column_names(columns)
    missing = [n for n in REQUIRED_HISTORY_COLUMNS if n not in names]
    if missing:
        raise ConfigurationError(f"History columns {list(names)} lack the required {missing}.")


def arrow_history_schema(columns: Sequence[Column] = HISTORY_COLUMNS):
    """The Arrow schema of a History batch of ``columns`` (default all 33), in their order."""
    import pyarrow as pa

    types = {
        "datetime": pa.timestamp("us", tz="UTC"),
        "str": pa.string(),
        "float": pa.float64(),
        "int": pa.int64(),
    }
    return pa.schema([pa.field(c.name, types[c.kind], nullable=c.nullable) for c in columns])
