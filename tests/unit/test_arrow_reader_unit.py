"""Reader choice and the value-free PostgreSQL query of the Arrow reader (no database needed)."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.queries import Historian, window_params, window_params_table
from airflow_backfill_provider.historian.readers import normalize_batch
from airflow_backfill_provider.historian.schema import HISTORY_COLUMNS, arrow_history_schema
from airflow_backfill_provider.hooks.wonderware import resolve_reader

UTC = timezone.utc
HOSTILE = "O'Brien\"; DROP TABLE x --"


def test_reader_choice():
    assert resolve_reader(None, "postgresql") == "arrow"
    assert resolve_reader("AUTO", "sqlite") == "arrow"
    assert resolve_reader("dbapi", "postgresql") == "dbapi"
    # SQL Server: mssql-python's Arrow fetch by default, pymssql on request
    assert resolve_reader("auto", "mssql") == "arrow"
    assert resolve_reader("dbapi", "mssql") == "dbapi"
    with pytest.raises(ConfigurationError, match="not available for 'oracle'"):
        resolve_reader("arrow", "oracle")
    with pytest.raises(ConfigurationError, match="Invalid reader 'fast'"):
        resolve_reader("fast", "postgresql")


def test_params_query_holds_no_value_and_keeps_the_filters():
    params = window_params_table(sa.MetaData())
    sql = str(Historian().history_query_from_params(params).compile(dialect=postgresql.dialect()))
    assert "%(" not in sql and "$1" not in sql  # nothing bound
    # nothing inlined but the provider's own constant: the retrieval mode
    assert sql.count("'") == 2 and "\"wwRetrievalMode\" = 'Full'" in sql
    where = sql.split("WHERE", 1)[1]
    assert '"History"."TagName" = ANY (CAST((SELECT array_agg(abp_history_window."TagName")' in where
    assert '"History"."DateTime" >= (SELECT max(abp_history_window."WindowStart")' in where
    assert '"History"."DateTime" < (SELECT max(abp_history_window."WindowEnd")' in where
    for option in ("wwVersion", "wwTimeZone"):
        assert f'"History"."{option}" = (SELECT max(' in where
    # the initial values a Historian makes at the start are left out (AVEVA 67304)
    assert (
        'coalesce("History"."Quality", 0) != 133 AND coalesce("History"."QualityDetail", 0) != 65536' in where
    )
    assert '"Value"' not in where  # NULL Values are kept
    without_version = str(
        Historian().history_query_from_params(params, version=None).compile(dialect=postgresql.dialect())
    )
    assert "wwVersion" not in without_version.split("WHERE", 1)[1]


def test_window_params_rows():
    table = window_params(
        [HOSTILE, "A", HOSTILE], datetime(2025, 1, 1, 1, tzinfo=UTC), datetime(2025, 1, 2), version=None
    )
    assert table.column("TagName").to_pylist() == [HOSTILE, "A"]
    assert table.column("WindowStart").to_pylist() == [datetime(2025, 1, 1, 1)] * 2  # naive UTC
    assert "RetrievalMode" not in table.column_names  # a constant of the query, not a value
    assert table.column("Version").to_pylist() == [None, None]


def test_normalize_batch_casts_driver_types():
    kinds = {
        "datetime": pa.timestamp("ns"),
        "str": pa.large_string(),
        "float": pa.float32(),
        "int": pa.int32(),
    }
    arrays = []
    for c in HISTORY_COLUMNS:
        if c.name == "StartDateTime":
            arrays.append(pa.array(["2025-01-01 00:00:01.500000"]))  # SQLite text timestamp
        elif c.name == "wwUnit":
            arrays.append(pa.nulls(1))  # an all-NULL column of a driver's null type
        elif c.kind == "datetime":
            arrays.append(pa.array([1_735_689_600_123_456_789], kinds["datetime"]))
        else:
            arrays.append(pa.array([{"str": "x", "float": 1.5, "int": 7}[c.kind]], kinds[c.kind]))
    batch = pa.RecordBatch.from_arrays(arrays, names=[c.name for c in HISTORY_COLUMNS])
    out = normalize_batch(batch, arrow_history_schema())
    assert out.schema.equals(arrow_history_schema(), check_metadata=True)
    row = out.to_pylist()[0]
    assert row["DateTime"] == datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)  # ns truncated, UTC
    assert row["StartDateTime"] == datetime(2025, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
    assert row["wwUnit"] is None and row["Quality"] == 7 and row["Value"] == 1.5
    with pytest.raises(ValueError, match="expected"):
        normalize_batch(batch.drop_columns(["wwUnit"]), arrow_history_schema())
