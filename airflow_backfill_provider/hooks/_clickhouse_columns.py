"""The History columns of a ClickHouse table: which of a selection it lacks, and adding them.

Used through :class:`~airflow_backfill_provider.hooks.clickhouse.ClickHouseBackfillHook`
(``missing_columns``, ``add_missing_columns``, ``ensure_history_columns``), in a session the hook
owns. A column is added with the type a new table's DDL would give it and at its place in schema
order, so a table that grew column by column looks like one created with those columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.schema import (
    HISTORY_COLUMN_NAMES,
    REQUIRED_HISTORY_COLUMNS,
    Column,
    clickhouse_column_type,
)
from airflow_backfill_provider.utils import quote_identifier, system_table_filter

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def table_columns(client: Client, table: str) -> list[str]:
    """The column names of ``table`` in their order; empty when the table does not exist."""
    where, params = system_table_filter(table)
    rows = client.query(
        f"SELECT name FROM system.columns WHERE {where} ORDER BY position", parameters=params
    ).result_rows
    return [str(name) for (name,) in rows]


def missing_columns(client: Client, table: str, selected: Sequence[Column], where: str) -> list[Column]:
    """The columns of ``selected`` that ``table`` lacks, in their order.

    :param where: the server or data directory, as messages name it.
    :raises ConfigurationError: when ``table`` does not exist, or is not a History table.
    """
    present = set(table_columns(client, table))
    if not present:
        raise ConfigurationError(
            f"The ClickHouse table {table!r} does not exist in {where}: a wonderware_backfill run "
            "creates it with the selected History columns. Check the table name (the setting "
            "WONDERWARE_BACKFILL_TABLE), or run a backfill first."
        )
    lacking = [n for n in REQUIRED_HISTORY_COLUMNS if n not in present]
    if lacking:
        raise ConfigurationError(
            f"The ClickHouse table {table!r} in {where} has no column {', '.join(lacking)}: it is not "
            "a History table. Point the setting WONDERWARE_BACKFILL_TABLE at the history table."
        )
    return [c for c in selected if c.name not in present]


def add_missing_columns(client: Client, table: str, selected: Sequence[Column], where: str) -> list[str]:
    """Add the columns of ``selected`` that ``table`` lacks; return their names (``[]`` when none)."""
    missing = missing_columns(client, table, selected, where)
    present = set(table_columns(client, table)) if missing else set()
    for column in missing:
        # After the nearest schema column before it that the table has: DateTime, first in the
        # schema and in every History table, is always one. IF NOT EXISTS: a concurrent task on a
        # ClickHouse server may add the same column first.
        i = HISTORY_COLUMN_NAMES.index(column.name)
        after = next(n for n in reversed(HISTORY_COLUMN_NAMES[:i]) if n in present)
        client.command(
            f"ALTER TABLE {quote_identifier(table)} ADD COLUMN IF NOT EXISTS `{column.name}` "
            f"{clickhouse_column_type(column)} AFTER `{after}`"
        )
        present.add(column.name)
    return [c.name for c in missing]
