"""A simulated historian and a ClickHouse target on Airflow connections, compared row by row.

Shared by the sync and History-column tests. Rows are compared as multisets of the chosen columns,
so a lost row, a duplicate and a wrong value all fail.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa

from airflow_backfill_provider.historian.queries import history_tables
from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

UTC = timezone.utc
TABLE = "WonderwareHistory"
ROW = ("TagName", "DateTime", "Value", "VValue")  # what the comparisons read unless told


class Plant:
    """The historian at ``url`` filled by the simulator, and the ClickHouse of ``clickhouse_conn``
    (embedded or a server), as the connections ``ww_plant`` and ``ch_plant``."""

    wonderware_conn_id = "ww_plant"
    clickhouse_conn_id = "ch_plant"

    def __init__(self, url: str, clickhouse_conn: dict, config: SimulatorConfig, monkeypatch) -> None:
        from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
        from airflow_backfill_provider.hooks.wonderware import WonderwareHook

        simulate(url, config, replace=True)
        monkeypatch.setenv(
            "AIRFLOW_CONN_WW_PLANT", json.dumps({"conn_type": "wonderware", "extra": {"sqlalchemy_dsn": url}})
        )
        monkeypatch.setenv("AIRFLOW_CONN_CH_PLANT", json.dumps(clickhouse_conn))
        self.url = url
        self.engine = sa.create_engine(url)
        self.source = WonderwareHook(self.wonderware_conn_id)
        self.ch = ClickHouseBackfillHook(self.clickhouse_conn_id)
        self.tags = self.source.discover_tags()

    def source_rows(self, start: datetime, end: datetime, columns: Sequence[str] = ROW) -> Counter:
        _, h = history_tables(sa.MetaData())
        lo, hi = start.replace(tzinfo=None), end.replace(tzinfo=None)
        # The window is applied here, not in SQL: SQLite compares DateTime as text, and rows added
        # by a test may be spelled differently from the simulator's.
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(h.c.DateTime, *(h.c[c] for c in columns)).where(h.c.TagName.in_(self.tags))
            ).all()
        return Counter(tuple(r[1:]) for r in rows if lo <= r[0] < hi)

    def clickhouse_rows(self, start: datetime, end: datetime, columns: Sequence[str] = ROW) -> Counter:
        with self.ch.session() as client:
            rows = client.query(
                f"SELECT {', '.join(columns)} FROM {TABLE} "
                "WHERE DateTime >= {s:DateTime64(6, 'UTC')} AND DateTime < {e:DateTime64(6, 'UTC')}",
                parameters={"s": start, "e": end},
            ).result_rows
        at = list(columns).index("DateTime") if "DateTime" in columns else -1
        return Counter(
            tuple(v.astimezone(UTC).replace(tzinfo=None) if k == at else v for k, v in enumerate(r))
            for r in rows
        )

    def assert_exact(self, start: datetime, end: datetime, columns: Sequence[str] = ROW) -> int:
        """ClickHouse holds exactly the source's rows of the window; returns how many."""
        source, held = self.source_rows(start, end, columns), self.clickhouse_rows(start, end, columns)
        assert held == source, {
            "missing": sum((source - held).values()),
            "extra": sum((held - source).values()),
        }
        return sum(source.values())

    def command(self, sql: str):
        with self.ch.session() as client:
            return client.command(sql)

    def plain_count(self) -> int:
        """``SELECT count()`` without FINAL: what a user's query sees."""
        return int(self.command(f"SELECT count() FROM {TABLE}"))

    def close(self) -> None:
        self.engine.dispose()
