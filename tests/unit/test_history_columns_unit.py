"""The History column selection (``history_columns``) and what derives from it: the source query,
the Arrow schema, the ClickHouse DDL, the setting and the operator's argument."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.queries import Historian
from airflow_backfill_provider.historian.schema import (
    HISTORY_COLUMN_NAMES,
    HISTORY_COLUMNS,
    arrow_history_schema,
    clickhouse_column_type,
    clickhouse_history_ddl,
    column_names,
    history_columns,
)
from airflow_backfill_provider.settings import WonderwareBackfillSettings

UTC = timezone.utc
MSSQL = sa.create_engine("mssql+pymssql://reader:pw@historian:1433/Runtime").dialect


@pytest.mark.parametrize("names", [None, [], "", " ", " , "])
def test_unset_or_empty_means_all_33_in_schema_order(names):
    assert history_columns(names) == HISTORY_COLUMNS and len(HISTORY_COLUMNS) == 33


@pytest.mark.parametrize(
    "names",
    [
        ["wwUnit", "Value", "TagName", "DateTime"],
        "wwUnit,Value,TagName,DateTime",
        " wwUnit , Value,TagName ,DateTime,Value",  # spaces trimmed, repeats count once
        ("DateTime", "TagName", "Value", "wwUnit"),
    ],
)
def test_a_selection_keeps_schema_order_whatever_the_order_written(names):
    assert column_names(history_columns(names)) == ("DateTime", "TagName", "Value", "wwUnit")


def test_every_column_is_selectable_with_the_key():
    for name in HISTORY_COLUMN_NAMES[2:]:
        assert column_names(history_columns([name, "TagName", "DateTime"])) == ("DateTime", "TagName", name)


@pytest.mark.parametrize(
    "names, message",
    [
        ("DateTime,TagName,Valeu", "Unknown History column(s) 'Valeu' (did you mean 'Value'?)"),
        ("DateTime,TagName,value", "'value' (did you mean 'Value'?)"),
        ("DateTime,TagName,wwunit", "'wwunit' (did you mean 'wwUnit'?)"),
        ("DateTime,TagName,Zebra", "Unknown History column(s) 'Zebra': names are exact and case-sensitive"),
        ("DateTime,TagName,A,B", "Unknown History column(s) 'A', 'B'"),
        ("TagName,Value", "lack 'DateTime': every selection needs DateTime and TagName"),
        ("Value", "lack 'DateTime', 'TagName'"),
        ("DateTime,,TagName", "Empty History column name in 'DateTime,,TagName'"),
    ],
)
def test_bad_selections_name_the_bad_names_and_what_to_do(names, message):
    with pytest.raises(ConfigurationError) as err:
        history_columns(names)
    assert message in str(err.value)


def test_the_unknown_name_message_lists_the_choices():
    with pytest.raises(ConfigurationError, match="choose from DateTime, TagName, Value, .*, wwUnit"):
        history_columns(["DateTime", "TagName", "Nope"])


def test_source_query_reads_only_the_selected_columns_in_schema_order():
    columns = history_columns("Value,TagName,DateTime,wwUnit")
    stmt = Historian().history_query(
        ["A"], datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC), columns=columns
    )
    sql = stmt.compile(dialect=MSSQL, compile_kwargs={"render_postcompile": True}).string
    assert sql.startswith(
        "SELECT [History].[DateTime], [History].[TagName], [History].[Value], [History].[wwUnit] \nFROM [History]"
    )
    # the retrieval options still filter on columns that are not loaded
    assert "[History].[wwRetrievalMode] = " in sql and "[History].[wwVersion] = " in sql


def test_arrow_schema_and_ddl_follow_the_selection():
    columns = history_columns("DateTime,TagName,VValue,wwUnit")
    assert arrow_history_schema(columns).names == ["DateTime", "TagName", "VValue", "wwUnit"]
    ddl = clickhouse_history_ddl("H", columns)
    assert ddl.splitlines()[2:6] == [
        "    `DateTime` DateTime64(6, 'UTC'),",
        "    `TagName` LowCardinality(String),",
        "    `VValue` Nullable(String),",
        "    `wwUnit` LowCardinality(Nullable(String))",
    ]
    assert "ORDER BY (TagName, DateTime)" in ddl and ddl.count("`") == 2 * 4 + 2
    assert clickhouse_history_ddl("H") == clickhouse_history_ddl("H", HISTORY_COLUMNS)
    assert all(
        f"`{c.name}` {clickhouse_column_type(c)}" in clickhouse_history_ddl("H") for c in HISTORY_COLUMNS
    )


def test_ddl_refuses_a_selection_without_the_key():
    with pytest.raises(ConfigurationError, match="lack the required"):
        clickhouse_history_ddl("H", HISTORY_COLUMNS[1:])


def test_setting_default_is_all_columns_and_a_subset_is_kept_in_schema_order():
    assert WonderwareBackfillSettings.from_env({}).history_columns == HISTORY_COLUMN_NAMES
    assert WonderwareBackfillSettings.from_env({"WONDERWARE_HISTORY_COLUMNS": ""}).all_history_columns
    s = WonderwareBackfillSettings.from_env({"WONDERWARE_HISTORY_COLUMNS": "Quality, Value,TagName,DateTime"})
    assert s.history_columns == ("DateTime", "TagName", "Value", "Quality") and not s.all_history_columns


@pytest.mark.parametrize(
    "value, message",
    [
        ("DateTime,TagName,Valeu", "WONDERWARE_HISTORY_COLUMNS='DateTime,TagName,Valeu': Unknown History column(s) 'Valeu' (did you mean 'Value'?)"),
        ("Value,Quality", "WONDERWARE_HISTORY_COLUMNS='Value,Quality': The History columns"),
    ],
)  # fmt: skip
def test_a_bad_setting_names_the_variable_and_the_value(value, message):
    with pytest.raises(ConfigurationError) as err:
        WonderwareBackfillSettings.from_env({"WONDERWARE_HISTORY_COLUMNS": value})
    assert message in str(err.value) and "unset it to load all 33" in str(err.value)


def test_operator_validates_its_columns_after_rendering():
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_backfill_provider.exceptions import fail_without_retry
    from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator

    def op(columns):
        return WonderwareToClickHouseOperator(
            task_id="t", tags=["A"], window_start="2025-01-01", window_end="2025-01-02", columns=columns
        )

    assert "columns" in WonderwareToClickHouseOperator.template_fields
    assert op(None)._validated()[4] == list(HISTORY_COLUMN_NAMES)
    assert op("Value, DateTime,TagName")._validated()[4] == ["DateTime", "TagName", "Value"]
    with pytest.raises(AirflowFailException, match=r"columns 'DateTime,TagName,Valu': Unknown .*'Value'"):
        with fail_without_retry():
            op("DateTime,TagName,Valu")._validated()
