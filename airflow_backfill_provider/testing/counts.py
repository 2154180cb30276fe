"""Rows counted straight from the source and the target, not through the provider's hooks.

What the demo and the tests compare after a backfill: History rows (``Sys*`` tags excluded) per UTC
day in the historian, and rows per tag or per day in ClickHouse (embedded, or a server's client).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

TARGET_TABLE = "WonderwareHistory"
_CLICKHOUSE_KEYS = {"tag": "TagName", "day": "toString(toDate(DateTime))"}


def clickhouse_counts(chdb_path: Path | str, by: str = "tag", table: str = TARGET_TABLE) -> dict[str, int]:
    """Rows per tag (``by="tag"``) or per UTC day (``by="day"``, ``YYYY-MM-DD``) in the embedded
    ClickHouse at ``chdb_path``; empty while the table does not exist."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    try:
        return client_counts(client, by, table)
    finally:
        client.close()


def client_counts(client, by: str = "tag", table: str = TARGET_TABLE) -> dict[str, int]:
    """Rows per tag or per UTC day in ``table``, through a clickhouse-connect ``client`` (a server's,
    or embedded); empty while the table does not exist."""
    if not client.command(f"EXISTS TABLE {table}"):
        return {}
    rows = client.query(f"SELECT {_CLICKHOUSE_KEYS[by]}, count() FROM {table} GROUP BY 1").result_rows
    return dict(rows)


def source_days(source: sa.Engine | str, table: str = "History") -> dict[str, int]:
    """History rows per UTC day (``YYYY-MM-DD``) of a simulated historian, ``Sys*`` tags excluded."""
    engine = sa.create_engine(source) if isinstance(source, str) else source
    # SQLite keeps DateTime as ISO text; PostgreSQL has a timestamp to format.
    day = (
        "to_char(\"DateTime\", 'YYYY-MM-DD')"
        if engine.dialect.name == "postgresql"
        else 'substr("DateTime", 1, 10)'
    )
    quoted = engine.dialect.identifier_preparer.quote(table)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(f"SELECT {day}, count(*) FROM {quoted} WHERE \"TagName\" NOT LIKE 'Sys%' GROUP BY 1")
            ).all()
    finally:
        if isinstance(source, str):
            engine.dispose()
    return dict(rows)
