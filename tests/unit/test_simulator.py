"""The historian simulator: schema, generated data, and loading into SQLite (ADBC and executemany)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql, sqlite

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.schema import (
    HISTORY_COLUMN_NAMES,
    HISTORY_COLUMNS,
    TAG_TYPES,
)
from airflow_backfill_provider.testing import generation
from airflow_backfill_provider.testing import simulator as sim

START = datetime(2025, 1, 1)
END = datetime(2025, 1, 3)  # two days


def config(**kwargs) -> sim.SimulatorConfig:
    defaults = dict(start=START, end=END, tags=10, rate=600, seed=7, sys_tags=2)
    return sim.SimulatorConfig(**{**defaults, **kwargs})


def history(cfg: sim.SimulatorConfig) -> pa.Table:
    return pa.concat_tables(sim.iter_history_batches(cfg))


def by_type(cfg: sim.SimulatorConfig) -> dict[str, pa.Table]:
    table = history(cfg)
    types = {t.name: "system" if t.system else t.tag_type for t in sim.plan_tags(cfg)}
    kind = pa.array([types[n] for n in table.column("TagName").to_pylist()])
    return {k: table.filter(pc.equal(kind, k)) for k in set(types.values())}


# --- schema ---------------------------------------------------------------------------------------


def test_history_tables_match_schema_module():
    tagref, history = sim.history_tables(sa.MetaData())
    assert (tagref.name, history.name) == ("TagRef", "History")
    assert tuple(history.c.keys()) == HISTORY_COLUMN_NAMES
    for c in HISTORY_COLUMNS:
        assert history.c[c.name].nullable == c.nullable
        assert history.c[c.name].server_default is None
    assert history.c.DateTime.type.timezone is False
    assert [[c.name for c in ix.columns] for ix in history.indexes] == [["TagName", "DateTime"]]
    assert tagref.c.TagName.primary_key


def test_history_tables_twice_and_with_schema():
    metadata = sa.MetaData()
    assert sim.history_tables(metadata) == sim.history_tables(metadata)
    tagref, history = sim.history_tables(metadata, schema="hist")
    assert (tagref.fullname, history.fullname) == ("hist.TagRef", "hist.History")


@pytest.mark.parametrize("dialect", [mssql.dialect(), postgresql.dialect(), sqlite.dialect()])
def test_ddl_compiles(dialect):
    tagref, history = sim.history_tables(sa.MetaData())
    ddl = str(sa.schema.CreateTable(history).compile(dialect=dialect))
    ddl += str(sa.schema.CreateTable(tagref).compile(dialect=dialect))
    ddl += "".join(str(sa.schema.CreateIndex(ix).compile(dialect=dialect)) for ix in history.indexes)
    assert "IX_History_TagName_DateTime" in ddl
    if dialect.name == "mssql":
        assert "[DateTime] DATETIME2(7) NOT NULL" in ddl
        assert "[TagName] NVARCHAR(256) NOT NULL" in ddl
    if dialect.name == "postgresql":
        assert '"DateTime" TIMESTAMP WITHOUT TIME ZONE NOT NULL' in ddl


# --- tags -------------------------------------------------------------------------------------------


def test_tag_mix_and_system_tags():
    tags = sim.plan_tags(config(tags=40, sys_tags=3))
    users = [t for t in tags if not t.system]
    assert [sum(t.tag_type == k for t in users) for k in sim.SIMULATED_TYPES] == [24, 8, 8]
    assert [t.name for t in tags if t.system] == list(sim.SYSTEM_TAGS[:3])
    assert not any(t.name.startswith("Sys") for t in users)
    assert len({t.name for t in tags}) == len({t.key for t in tags}) == 43

    custom = sim.plan_tags(config(tags=7, mix={"analog": 0, "discrete": 1, "string": 1}, sys_tags=0))
    assert sorted(t.tag_type for t in custom) == ["discrete"] * 4 + ["string"] * 3


def test_hostile_tag_names_cover_each_type():
    tags = sim.plan_tags(config(hostile_tags=True))
    assert [(t.name, t.tag_type) for t in tags[:3]] == list(
        zip(sim.HOSTILE_TAG_NAMES, ("analog", "discrete", "string"), strict=True)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"end": START},
        {"rate": 0},
        {"tags": -1},
        {"sys_tags": 99},
        {"mix": {"analog": 1, "complex": 1}},
        {"mix": {"analog": 0}},
    ],
)
def test_invalid_config(kwargs):
    with pytest.raises(ConfigurationError):
        config(**kwargs)


# --- generated rows -----------------------------------------------------------------------------


def test_deterministic_for_a_seed_whatever_the_slice_size():
    first = history(config(slice_rows=1000))
    assert first.num_rows == 12 * 288
    assert first.equals(history(config(slice_rows=50_000)))
    assert not first.equals(history(config(seed=8)))


def test_row_count_is_tags_times_samples():
    table = history(config())
    counts = pc.value_counts(table.column("TagName"))
    assert {c["counts"] for c in counts.to_pylist()} == {2 * 86400 // 600}
    assert len(counts) == 12
    assert table.schema.names == list(HISTORY_COLUMN_NAMES)


def test_boundary_rows_on_every_midnight_and_given_instants():
    extra = datetime(2025, 1, 1, 12, 0, 0, 250_000)
    cfg = config(boundary_every=timedelta(days=1), boundary_instants=(extra, datetime(2030, 1, 1)))
    table = history(cfg)
    assert table.num_rows == 12 * (288 + 3)  # midnights of Jan 1 and Jan 2, and `extra`
    for instant in (START, START + timedelta(days=1), extra):
        at = table.filter(pc.equal(table.column("DateTime"), pa.scalar(instant, pa.timestamp("us"))))
        assert sorted(at.column("TagName").to_pylist()) == sorted(t.name for t in sim.plan_tags(cfg))
    # Regular samples never land on a boundary: each tag has a phase in (0, rate).
    micros = pc.cast(history(config()).column("DateTime"), pa.int64()).to_numpy()
    assert not (micros % 600_000_000 == 0).any()


def test_values_quality_and_constants_per_type():
    tables = by_type(config(tags=20, end=START + timedelta(days=7)))
    analog, discrete, string = tables["analog"], tables["discrete"], tables["string"]

    assert string.column("Value").null_count == string.num_rows
    assert set(string.column("VValue").to_pylist()) <= set(sim.STRING_STATES)
    assert len(set(string.column("VValue").to_pylist())) > 1

    assert set(discrete.column("Value").to_pylist()) == {0.0, 1.0}
    assert set(discrete.column("VValue").to_pylist()) == {"0", "1"}

    bad = analog.filter(pc.equal(analog.column("Quality"), generation._BAD))
    assert 0 < bad.num_rows < analog.num_rows * 0.2
    assert bad.column("Value").null_count == bad.num_rows == analog.column("Value").null_count
    assert set(bad.column("OPCQuality").to_pylist()) == {24}
    assert set(bad.column("PercentGood").to_pylist()) == {0.0}
    good = analog.filter(pc.equal(analog.column("Quality"), 0))
    assert set(good.column("OPCQuality").to_pylist()) == {192}
    assert set(good.column("QualityDetail").to_pylist()) <= {192, 44}
    assert set(analog.column("wwInterpolationType").to_pylist()) == {"Linear"}

    everything = history(config())
    # stored values only: 0 good, 1 bad; an initial value (Quality 133) is made by a query, not stored
    assert set(everything.column("Quality").to_pylist()) == {0, 1}
    assert everything.column("DateTime").equals(everything.column("StartDateTime"))
    for name, value in generation.CONSTANT_COLUMNS.items():
        assert set(everything.column(name).to_pylist()) == {value}
    for name in generation.NULL_COLUMNS:
        assert everything.column(name).null_count == everything.num_rows
    for name in generation._GENERATED:
        assert everything.column(name).null_count < everything.num_rows


def test_system_time_tags_follow_the_clock():
    system = by_type(config())["system"]
    sec = system.filter(pc.equal(system.column("TagName"), "SysTimeSec"))
    seconds = [dt.second for dt in sec.column("DateTime").to_pylist()]
    assert sec.column("Value").to_pylist() == [float(s) for s in seconds]


# --- loading into SQLite --------------------------------------------------------------------------


def _counts(url: str) -> tuple[dict, int, int]:
    engine = sa.create_engine(url)
    tagref, history = sim.history_tables(sa.MetaData())
    with engine.connect() as conn:
        per_tag = dict(
            conn.execute(sa.select(history.c.TagName, sa.func.count()).group_by(history.c.TagName)).all()
        )
        midnight = conn.scalar(sa.select(sa.func.count()).where(history.c.DateTime == datetime(2025, 1, 2)))
        in_day = conn.scalar(
            sa.select(sa.func.count()).where(
                history.c.DateTime >= datetime(2025, 1, 1), history.c.DateTime < datetime(2025, 1, 2)
            )
        )
    engine.dispose()
    return per_tag, midnight, in_day


@pytest.mark.parametrize("method", ["auto", "executemany"])
def test_simulate_into_sqlite(tmp_path, method):
    url = f"sqlite:///{tmp_path}/historian.db"
    cfg = config(boundary_every=timedelta(days=1), hostile_tags=True)
    summary = sim.simulate(url, cfg, method=method)
    assert summary.loader == ("adbc" if method == "auto" else "executemany")
    assert summary.total_rows == 12 * (288 + 2) and summary.boundary_rows == 24
    assert summary.rows == {"analog": 6 * 290, "discrete": 2 * 290, "string": 2 * 290, "system": 2 * 290}
    assert summary.first == "2025-01-01T00:00:00+00:00"

    per_tag, midnight, in_day = _counts(url)
    assert per_tag == {t.name: 290 for t in sim.plan_tags(cfg)}  # hostile names included, verbatim
    assert midnight == 12  # the boundary rows compare equal to a bound datetime
    assert in_day == 12 * 145  # [Jan 1, Jan 2) holds Jan 1's midnight row, not Jan 2's

    engine = sa.create_engine(url)
    tagref, history = sim.history_tables(sa.MetaData())
    with engine.connect() as conn:
        types = dict(conn.execute(sa.select(tagref.c.TagName, tagref.c.TagType)).all())
        row = conn.execute(
            sa.select(history).where(history.c.TagName == sim.HOSTILE_TAG_NAMES[0]).limit(1)
        ).one()
        assert sa.inspect(conn).get_indexes("History")[0]["column_names"] == ["TagName", "DateTime"]
    engine.dispose()
    assert types[sim.HOSTILE_TAG_NAMES[0]] == TAG_TYPES["analog"] and types["SysTimeSec"] == 1
    assert row.DateTime == datetime(2025, 1, 1) and row.wwRetrievalMode == "Full"
    assert row.wwVersion == "Latest" and row.wwTimeZone == "UTC" and row.StateTime is None


def test_append_then_replace(tmp_path):
    url = f"sqlite:///{tmp_path}/historian.db"
    cfg = config(tags=3, sys_tags=0)
    sim.simulate(url, cfg)
    sim.simulate(url, cfg)  # append: every column is sent to a table it did not create
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql('SELECT count(*) FROM "History"').scalar() == 2 * 3 * 288
        assert conn.exec_driver_sql('SELECT count(*) FROM "TagRef"').scalar() == 3
        assert conn.exec_driver_sql('SELECT DISTINCT "wwRetrievalMode" FROM "History"').all() == [("Full",)]
    sim.simulate(url, cfg, replace=True)
    with engine.connect() as conn:
        assert conn.exec_driver_sql('SELECT count(*) FROM "History"').scalar() == 3 * 288
    engine.dispose()


def test_cli_prints_json_summary_last(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cli.db"
    argv = ["--url", url, "--tags", "4", "--start", "2025-01-01", "--end", "2025-01-02", "--rate", "3600"]
    assert sim.main([*argv, "--seed", "1", "--boundary-rows", "--hostile-tags", "--replace"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["total_rows"] == 7 * 25 and summary["boundary_rows"] == 7
    assert summary["tags"] == {"analog": 2, "discrete": 1, "string": 1, "system": 3}
    with pytest.raises(SystemExit):
        sim.main(["--url", url, "--start", "2025-01-02", "--end", "2025-01-01"])
