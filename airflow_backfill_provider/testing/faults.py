"""Real source failures for tests: a PostgreSQL historian whose History view raises on chosen rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate


def faulty_historian(
    url: str, *, days: int, tags: int, rate: int, fault_sql: list[str], predicate: str
) -> sa.Engine:
    """Simulate a PostgreSQL historian, then hide History behind a view filtered by ``predicate``: a
    PL/pgSQL function (created by ``fault_sql``) that raises to inject a real source failure.
    The data stays readable as ``history_data``. Returns an engine (caller disposes)."""
    start = datetime(2025, 1, 1)
    simulate(
        url,
        SimulatorConfig(start=start, end=start + timedelta(days=days), tags=tags, rate=rate),
        replace=True,
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text('ALTER TABLE "History" RENAME TO history_data'))
        for statement in fault_sql:
            conn.execute(sa.text(statement))
        conn.execute(sa.text(f'CREATE VIEW "History" AS SELECT * FROM history_data WHERE {predicate}'))
    return engine
