"""The historian simulator against a real (throwaway) PostgreSQL: bulk load paths and exact counts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from airflow_backfill_provider.testing import simulator as sim

START = datetime(2025, 1, 1)


def _per_tag(url: str, schema: str | None = None) -> dict[str, int]:
    tagref, history = sim.history_tables(sa.MetaData(), schema)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(history.c.TagName, sa.func.count()).group_by(history.c.TagName))
        per_tag = dict(rows.all())
    engine.dispose()
    return per_tag


def test_bulk_load_200k_rows(postgres_url):
    # 60 user tags + 3 Sys tags, 3 days at 80 s: 3240 samples and 3 midnights per tag.
    cfg = sim.SimulatorConfig(
        start=START,
        end=START + timedelta(days=3),
        tags=60,
        rate=80,
        seed=3,
        boundary_every=timedelta(days=1),
        hostile_tags=True,
    )
    summary = sim.simulate(postgres_url, cfg, replace=True)
    assert summary.loader == "adbc"
    assert summary.total_rows == 63 * (3240 + 3) == 204_309
    assert summary.rows == {
        "analog": 36 * 3243,
        "discrete": 12 * 3243,
        "string": 12 * 3243,
        "system": 3 * 3243,
    }
    assert _per_tag(postgres_url) == {t.name: 3243 for t in sim.plan_tags(cfg)}

    tagref, history = sim.history_tables(sa.MetaData())
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        count = sa.select(sa.func.count())
        assert conn.scalar(count.select_from(tagref)) == 63
        assert conn.scalar(count.where(history.c.DateTime == START + timedelta(days=1))) == 63
        day = (history.c.DateTime >= START) & (history.c.DateTime < START + timedelta(days=1))
        assert conn.scalar(count.where(day)) == 63 * (1080 + 1)
        assert conn.scalar(count.where(history.c.Value.is_(None))) == summary.null_values
        hostile = conn.execute(
            sa.select(history.c.VValue, history.c.Value).where(history.c.TagName == sim.HOSTILE_TAG_NAMES[2])
        ).all()
        assert len(hostile) == 3243 and {v for _, v in hostile} == {None}
        constants = conn.execute(
            sa.select(history.c.wwRetrievalMode, history.c.wwVersion, history.c.wwTimeZone).distinct()
        ).all()
        assert constants == [("Full", "Latest", "UTC")]
        column_type = conn.exec_driver_sql(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'History' "
            "AND column_name = 'DateTime'"
        ).scalar()
        assert column_type == "timestamp without time zone"
        assert conn.scalar(sa.select(sa.func.min(history.c.DateTime))) == START
    assert sa.inspect(engine).get_indexes("History")[0]["column_names"] == ["TagName", "DateTime"]
    engine.dispose()


@pytest.mark.parametrize("method", ["copy", "executemany"])
def test_other_load_paths_give_the_same_rows(postgres_url, method):
    cfg = sim.SimulatorConfig(start=START, end=START + timedelta(hours=6), tags=6, rate=30, sys_tags=1)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA hist")
    engine.dispose()
    summary = sim.simulate(postgres_url, cfg, schema="hist", method=method)
    assert summary.loader == method
    assert _per_tag(postgres_url, "hist") == {t.name: 720 for t in sim.plan_tags(cfg)}
    tagref, history = sim.history_tables(sa.MetaData(), "hist")
    expected = sim.iter_history_batches(cfg)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        loaded = conn.execute(sa.select(history).order_by(history.c.TagName, history.c.DateTime)).all()
    engine.dispose()
    rows = sorted(
        (tuple(r.values()) for table in expected for r in table.to_pylist()), key=lambda r: (r[1], r[0])
    )
    assert [tuple(r) for r in loaded] == rows
