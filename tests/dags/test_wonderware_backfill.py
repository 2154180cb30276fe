"""`wonderware_backfill` under dag.test(): PostgreSQL historian → embedded ClickHouse (chdb), real parts."""

from __future__ import annotations

from datetime import datetime, timezone

import pendulum
import pytest
import sqlalchemy as sa

from airflow_backfill_provider.testing.counts import clickhouse_counts
from airflow_backfill_provider.testing.dag_runs import run_note
from airflow_backfill_provider.testing.faults import faulty_historian

UTC = timezone.utc
JAN1 = datetime(2025, 1, 1, tzinfo=UTC)
JAN2 = datetime(2025, 1, 2, tzinfo=UTC)
HOSTILE = "O'Brien\"; DROP TABLE x --"


def source_counts(url: str, start: datetime, end: datetime, table: str = "History") -> dict[str, int]:
    """Per-tag rows of the window, counted straight from PostgreSQL (not through our hook)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f'SELECT "TagName", count(*) FROM "{table}" WHERE "DateTime" >= :s AND "DateTime" < :e '
                "AND \"TagName\" NOT LIKE 'Sys%' GROUP BY 1"
            ),
            {"s": start.replace(tzinfo=None), "e": end.replace(tzinfo=None)},
        ).all()
    engine.dispose()
    return {t: n for t, n in rows}


def run(dagbag, logical_date: datetime, **conf):
    # A freshly parsed DAG per run: dag.test() runs tasks in this process and the task objects keep
    # the Params of the previous run's conf (a dry run would stick). Production runs do not share.
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=dagbag.dag_folder).get_dag("wonderware_backfill")
    return dag.test(logical_date=pendulum.instance(logical_date), run_conf=conf or None)


def states(dr) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ti in dr.get_task_instances():
        out.setdefault(ti.task_id, []).append(ti.state)
    return out


def test_backfill_day_is_exact_for_every_tag_type(connections, dagbag, historian_server, chdb_path):
    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    # A manual dag.test(logical_date=X) covers [X - 1 day, X).
    dr = run(dagbag, JAN2, tag_group_size=5, chunk_window="PT8H")
    assert (dr.data_interval_start, dr.data_interval_end) == (JAN1, JAN2)
    assert dr.state == "success", states(dr)
    assert len(states(dr)["fetch_insert"]) == 3 * 3  # 3 windows × 15 tags / 5 per group

    expected = source_counts(url, JAN1, JAN2)
    assert clickhouse_counts(chdb_path) == expected
    assert HOSTILE in expected and expected[HOSTILE] > 0

    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    try:
        # rows exactly at midnight: the one at 2025-01-01 00:00 belongs to this day, 01-02 00:00 does not
        at = client.query(
            "SELECT toDate(DateTime), count() FROM WonderwareHistory "
            "WHERE toTime(DateTime) = toTime(toDateTime('1970-01-01 00:00:00')) GROUP BY 1"
        ).result_rows
        kinds = client.query(
            "SELECT countIf(Value IS NULL AND VValue IS NOT NULL), countIf(Value IN (0, 1)), "
            "countIf(Value IS NULL AND Quality != 0) FROM WonderwareHistory"
        ).result_rows[0]
    finally:
        client.close()
    assert [(str(d), n) for d, n in at] == [("2025-01-01", len(expected))]
    string_rows, discrete_like, bad_quality_nulls = kinds
    assert string_rows > 0 and discrete_like > 0 and bad_quality_nulls > 0  # NULL-Value rows kept

    # re-running the same interval replaces it: no duplicates, same counts (plain count(), no FINAL)
    again = run(dagbag, JAN2, tag_group_size=4, chunk_window="P1D")
    assert again.state == "success", states(again)
    assert clickhouse_counts(chdb_path) == expected

    # the next day lands beside it; the midnight boundary row of 01-02 now appears exactly once
    nxt = run(dagbag, datetime(2025, 1, 3, tzinfo=UTC), tag_group_size=8)
    assert nxt.state == "success", states(nxt)
    both = source_counts(url, JAN1, datetime(2025, 1, 3, tzinfo=UTC))
    assert clickhouse_counts(chdb_path) == both


def test_empty_interval_succeeds_with_zero_rows(connections, dagbag, historian_server, chdb_path):
    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    dr = run(dagbag, datetime(2025, 2, 1, tzinfo=UTC), tag_group_size=20, chunk_window="P1D")
    assert dr.state == "success", states(dr)
    assert states(dr)["fetch_insert"] == ["success"]
    assert clickhouse_counts(chdb_path) == {}
    finalize = next(ti for ti in dr.get_task_instances() if ti.task_id == "finalize")
    assert finalize.xcom_pull(task_ids="finalize")["rows"] == 0
    # A green run that loaded nothing says so on its page (issue 17, item 15).
    assert run_note(dr).startswith(
        "Loaded nothing: the source has no row in [2025-01-31T00:00:00+00:00, 2025-02-01T00:00:00+00:00) "
        "for the 12 tags (1 chunk(s))."
    )


def test_an_explicit_window_is_the_one_the_event_summary_and_note_name(
    connections, dagbag, historian_server, chdb_path
):
    """A manual run dated 2025-03-01 that loads range_start/range_end 2025-01-01: the asset event,
    finalize's summary and the run's note all name 2025-01-01, not the run's own data interval
    (issue 17, item 8)."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    dr = run(
        dagbag,
        datetime(2025, 3, 1, tzinfo=UTC),
        range_start="2025-01-01T00:00:00Z",
        range_end="2025-01-02T00:00:00Z",
        tag_group_size=15,
        chunk_window="P1D",
    )
    assert dr.state == "success", states(dr)
    rows = sum(source_counts(url, JAN1, JAN2).values())
    assert rows > 0 and sum(clickhouse_counts(chdb_path).values()) == rows
    with create_session() as session:
        (extra,) = session.scalars(
            select(AssetEvent.extra).where(AssetEvent.source_run_id == dr.run_id)
        ).all()
    assert extra == {
        "rows": rows,
        "chunks": 1,
        "window_start": "2025-01-01T00:00:00+00:00",
        "window_end": "2025-01-02T00:00:00+00:00",
    }
    finalize = next(ti for ti in dr.get_task_instances() if ti.task_id == "finalize")
    summary = finalize.xcom_pull(task_ids="finalize")
    assert (summary["window_start"], summary["window_end"]) == (extra["window_start"], extra["window_end"])
    assert run_note(dr).startswith(
        f"Loaded {rows} rows of 12 tags over [2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00) in 1 chunk(s)"
    )


def test_dry_run_writes_nothing(connections, dagbag, historian_server, chdb_path):
    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    dr = run(dagbag, JAN2, dry_run=True, tag_group_size=15)
    assert dr.state == "success", states(dr)
    assert states(dr)["finalize"] == ["skipped"]  # no asset event for a dry run
    results = [
        ti.xcom_pull(task_ids="fetch_insert", map_indexes=ti.map_index)
        for ti in dr.get_task_instances()
        if ti.task_id == "fetch_insert"
    ]
    assert sum(r["source_rows"] for r in results) == sum(source_counts(url, JAN1, JAN2).values())
    assert all(r["rows"] == 0 and r["dry_run"] for r in results)
    assert clickhouse_counts(chdb_path) == {}


def test_chunk_failing_mid_stream_succeeds_on_retry_and_ends_exact(
    connections, dagbag, postgres_url, chdb_path
):
    """History is a view whose rows pass through a function that raises once, at the 10,000th row
    read (a sequence counts rows and is not rolled back), i.e. mid-way through a chunk's stream."""
    engine = faulty_historian(
        postgres_url,
        days=1,
        tags=10,
        rate=30,
        fault_sql=[
            "CREATE SEQUENCE rows_read",
            "CREATE FUNCTION fail_once() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ BEGIN "
            "IF nextval('rows_read') = 10000 THEN RAISE EXCEPTION 'injected: connection lost mid-stream'; "
            "END IF; RETURN true; END $$",
        ],
        predicate="fail_once()",
    )
    engine.dispose()
    connections(source_url=postgres_url, chdb_path=chdb_path)

    dr = run(dagbag, JAN2, tag_group_size=5, chunk_window="PT12H", batch_size=1000)
    assert dr.state == "success", states(dr)
    tries = sorted(ti.try_number for ti in dr.get_task_instances() if ti.task_id == "fetch_insert")
    assert tries == [1, 1, 1, 2]  # exactly one chunk failed once and was retried
    assert clickhouse_counts(chdb_path) == source_counts(postgres_url, JAN1, JAN2)


def test_source_down_fails_clearly_and_writes_nothing(connections, dagbag, chdb_path):
    from airflow_backfill_provider.testing.services import free_port

    down = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/historian"
    connections(source_url=down, chdb_path=chdb_path, source_extra={"retry_attempts": 2})
    dr = run(dagbag, JAN2)
    assert dr.state == "failed"
    st = states(dr)
    assert st["plan"] == ["failed"]
    assert st["finalize"] == ["upstream_failed"]
    assert clickhouse_counts(chdb_path) == {}


def test_source_down_error_names_the_problem(connections, chdb_path):
    from airflow_backfill_provider.exceptions import SourceUnavailableError
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook
    from airflow_backfill_provider.testing.services import free_port

    down = f"postgresql+psycopg://reader:s3cret-pw@127.0.0.1:{free_port()}/historian"
    connections(source_url=down, chdb_path=chdb_path, source_extra={"retry_attempts": 2})
    with pytest.raises(SourceUnavailableError) as err:
        WonderwareHook().discover_tags()
    message = str(err.value)
    assert "Tag discovery failed 2 times" in message and "OperationalError" in message
    assert "s3cret-pw" not in message


def test_bad_chunk_fails_alone_then_reprocessing_fixes_it(connections, dagbag, postgres_url, chdb_path):
    """One tag group's reads always fail: its chunks fail after their retry, the others land, finalize
    still runs and fails the run; once the source is fixed, re-running the interval ends exact."""
    engine = faulty_historian(
        postgres_url,
        days=1,
        tags=10,
        rate=120,
        fault_sql=[
            "CREATE TABLE broken (tag text)",
            "CREATE FUNCTION readable(t text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ BEGIN "
            "IF EXISTS (SELECT 1 FROM broken WHERE tag = t) THEN RAISE EXCEPTION 'disk error reading %', t; "
            "END IF; RETURN true; END $$",
        ],
        predicate='readable("TagName")',
    )
    with engine.begin() as conn:
        bad_tag = conn.execute(sa.text('SELECT min("TagName") FROM history_data')).scalar()
        conn.execute(sa.text("INSERT INTO broken VALUES (:t)"), {"t": bad_tag})
    connections(source_url=postgres_url, chdb_path=chdb_path, source_extra={"retry_attempts": 1})

    dr = run(dagbag, JAN2, tag_group_size=5, chunk_window="P1D")
    st = states(dr)
    assert dr.state == "failed"
    assert sorted(st["fetch_insert"]) == ["failed", "success"]
    assert st["finalize"] == ["failed"]  # it ran, reported, and failed the run
    expected = source_counts(postgres_url, JAN1, JAN2, table="history_data")
    landed = clickhouse_counts(chdb_path)
    assert bad_tag not in landed and landed and all(expected[t] == n for t, n in landed.items())

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM broken"))
    engine.dispose()
    fixed = run(dagbag, JAN2, tag_group_size=5, chunk_window="P1D")
    assert fixed.state == "success", states(fixed)
    assert clickhouse_counts(chdb_path) == expected


def test_history_columns_setting_loads_a_subset_and_a_later_column_fills_on_reprocess(
    connections, dagbag, historian_server, chdb_path, monkeypatch
):
    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    monkeypatch.setenv("WONDERWARE_HISTORY_COLUMNS", "Value, TagName,DateTime")
    window = {
        "range_start": "2025-01-01T00:00:00Z",
        "range_end": "2025-01-01T06:00:00Z",
        "tag_group_size": 20,
    }
    dr = run(dagbag, JAN2, chunk_window="PT6H", **window)
    assert dr.state == "success", states(dr)
    expected = source_counts(url, JAN1, datetime(2025, 1, 1, 6, tzinfo=UTC))
    assert clickhouse_counts(chdb_path) == expected

    import clickhouse_connect

    def described():
        client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
        try:
            names = [r[0] for r in client.query("DESCRIBE TABLE WonderwareHistory").result_rows]
            filled = (
                client.command("SELECT countIf(Quality IS NOT NULL) FROM WonderwareHistory")
                if "Quality" in names
                else None
            )
            return names, filled
        finally:
            client.close()

    assert described() == (["DateTime", "TagName", "Value"], None)

    # Quality joins the setting: the reprocess adds the column and fills it, counts unchanged
    monkeypatch.setenv("WONDERWARE_HISTORY_COLUMNS", "DateTime,TagName,Value,Quality")
    again = run(dagbag, JAN2, chunk_window="PT6H", **window)
    assert again.state == "success", states(again)
    assert clickhouse_counts(chdb_path) == expected
    assert described() == (["DateTime", "TagName", "Value", "Quality"], sum(expected.values()))


def test_a_bad_history_columns_setting_fails_the_parse_naming_it(monkeypatch, airflow_db):
    import os

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("WONDERWARE_HISTORY_COLUMNS", "DateTime,TagName,Valeu")
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    errors = "\n".join(bag.import_errors.values())
    assert "WONDERWARE_HISTORY_COLUMNS='DateTime,TagName,Valeu': Unknown History column(s) 'Valeu'" in errors
    assert "(did you mean 'Value'?)" in errors and "wonderware_backfill" not in bag.dag_ids
