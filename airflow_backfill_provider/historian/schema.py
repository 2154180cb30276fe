"""The AVEVA/Wonderware ``History`` and ``TagRef`` schemas, described once.

Everything that needs the column list (the SQL source query, the simulator, the Arrow schema of a
transfer, the ClickHouse DDL) derives it from :data:`HISTORY_COLUMNS`, so the 33 columns cannot drift
apart between source and target. No Airflow import: unit-tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_backfill_provider.utils import quote_identifier

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


def clickhouse_history_ddl(table: str = DEFAULT_TABLE) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the history table.

    Partitioned by month and ordered by (TagName, DateTime). Deliberately no TTL: the seed's 90-day
    TTL would silently delete the history a backfill just loaded.
    """
    cols = []
    for c in HISTORY_COLUMNS:
        ch_type = f"Nullable({_CLICKHOUSE_TYPES[c.kind]})" if c.nullable else _CLICKHOUSE_TYPES[c.kind]
        cols.append(f"    `{c.name}` {f'LowCardinality({ch_type})' if c.low_cardinality else ch_type}")
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(table)}\n(\n"
        + ",\n".join(cols)
        + "\n)\nENGINE = MergeTree\nPARTITION BY toYYYYMM(DateTime)\nORDER BY (TagName, DateTime)"
    )


def arrow_history_schema():
    """The Arrow schema of a History batch, in :data:`HISTORY_COLUMNS` order."""
    import pyarrow as pa

    types = {
        "datetime": pa.timestamp("us", tz="UTC"),
        "str": pa.string(),
        "float": pa.float64(),
        "int": pa.int64(),
    }
    return pa.schema([pa.field(c.name, types[c.kind], nullable=c.nullable) for c in HISTORY_COLUMNS])
