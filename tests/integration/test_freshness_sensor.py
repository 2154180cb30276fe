"""ClickHouseFreshnessSensor and its trigger against the real embedded ClickHouse (chdb).

Every mode is run for real: ``poke`` through ``execute``, ``reschedule`` and ``deferrable`` through
``dag.test()`` (Airflow's own reschedule records and its inline triggerer), and the trigger's
``run()`` under asyncio. The history table is the one ``wonderware_backfill`` creates.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.historian.freshness import recent_sql, table_newest_sql, tags_newest_sql
from airflow_backfill_provider.historian.schema import DEFAULT_TABLE

UTC = timezone.utc
CONN = "ch_fresh"


@pytest.fixture
def ch_conn(monkeypatch, chdb_path):
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN.upper()}",
        json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": chdb_path}}),
    )
    return CONN


def hook():
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    return ClickHouseBackfillHook(clickhouse_conn_id=CONN)


def load(rows: dict[str, list[timedelta]], table: str = DEFAULT_TABLE) -> datetime:
    """Create the history table and insert, per tag, one row at ``now - age`` for each age."""
    now = datetime.now(UTC)
    h = hook()
    with h.session() as client:
        h.ensure_history_table(client, table)
        data = [[now - age, tag, 1.0] for tag, ages in rows.items() for age in ages]
        if data:
            client.insert(table, data, column_names=["DateTime", "TagName", "Value"])
    return now


def sensor(**kwargs):
    from airflow_backfill_provider.sensors.clickhouse import ClickHouseFreshnessSensor

    kwargs.setdefault("task_id", f"fresh_{uuid.uuid4().hex[:6]}")
    kwargs.setdefault("max_lag", "5m")
    return ClickHouseFreshnessSensor(clickhouse_conn_id=CONN, **kwargs)


def trigger(**kwargs):
    from airflow_backfill_provider.triggers.clickhouse import ClickHouseFreshnessTrigger

    kwargs.setdefault("max_lag_seconds", 300)
    return ClickHouseFreshnessTrigger(clickhouse_conn_id=CONN, **kwargs)


async def first_event(trig, timeout: float = 30):
    gen = trig.run()
    try:
        return (await asyncio.wait_for(gen.__anext__(), timeout)).payload
    finally:
        await gen.aclose()


def minutes(*values: float) -> list[timedelta]:
    return [timedelta(minutes=v) for v in values]


# -- poke mode -------------------------------------------------------------------------------------


def test_poke_passes_and_fails_around_the_threshold(ch_conn):
    load({"A": minutes(30, 20, 4)})
    done = sensor(max_lag="5m").poke({})
    assert done and done.xcom_value["fresh"] is True
    assert 235 < done.xcom_value["lag_seconds"] < 300
    assert done.xcom_value["max_lag_seconds"] == 300
    assert sensor(max_lag="3m").poke({}) is False
    assert sensor(max_lag=timedelta(minutes=3)).poke({}) is False


def test_poke_mode_times_out_with_the_lag_in_the_message(ch_conn):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    load({"A": minutes(9)})
    s = sensor(max_lag="5m", poke_interval=0.2, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout) as err:
        s.execute({})
    assert time.monotonic() - started < 60  # the timeout ended the wait
    text = str(err.value)
    assert "timed out" in text and f"{DEFAULT_TABLE} is stale" in text
    assert "lag 9m" in text and "max_lag 5m" in text


def test_poke_mode_returns_the_summary_when_fresh(ch_conn):
    load({"A": minutes(1)})
    result = sensor(max_lag="5m", poke_interval=0.2, timeout=5).execute({})
    assert result["fresh"] is True and result["table"] == DEFAULT_TABLE
    assert set(result) == {"table", "fresh", "checked_at", "newest", "lag_seconds", "max_lag_seconds"}
    assert 55 < result["lag_seconds"] < 120


def test_per_tag_names_the_lagging_and_the_missing_tags(ch_conn):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    load({"A": minutes(1), "B": minutes(2), "C": minutes(30, 12), "Other": minutes(0)})
    ok = sensor(tags=["A", "B"]).poke({})
    assert ok and ok.xcom_value["tags"] == 2 and ok.xcom_value["oldest_tag"] == "B"
    assert ok.xcom_value["stale_count"] == 0

    s = sensor(tags=["A", "C", "D", "B"], poke_interval=0.2, timeout=0.3)
    assert s.poke({}) is False
    with pytest.raises(AirflowSensorTimeout) as err:
        s.execute({})
    text = str(err.value)
    assert "stale for 2 of 4 tag(s)" in text
    assert "C lag 12m" in text and "D no rows" in text
    assert "A lag" not in text and "B lag" not in text
    # A single tag name (a rendered template is a string) is one tag, not a list of characters.
    assert sensor(tags="C").poke({}) is False and sensor(tags="A").poke({})


def test_the_embedded_connection_type_works_too(monkeypatch, chdb_path):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CH_EMBEDDED", json.dumps({"conn_type": "chdb", "extra": {"chdb_path": chdb_path}})
    )
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "chdb", "extra": {"chdb_path": chdb_path}})
    )
    load({"A": minutes(1)})
    from airflow_backfill_provider.sensors.clickhouse import ClickHouseFreshnessSensor

    embedded = ClickHouseFreshnessSensor(task_id="t", clickhouse_conn_id="ch_embedded", max_lag="5m")
    assert embedded.poke({}).xcom_value["fresh"] is True


def test_empty_table_is_stale_with_a_clear_message(ch_conn):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    load({})
    with pytest.raises(AirflowSensorTimeout, match="holds no rows at all"):
        sensor(poke_interval=0.1, timeout=0.2).execute({})
    with pytest.raises(AirflowSensorTimeout, match="A no rows"):
        sensor(tags=["A"], poke_interval=0.1, timeout=0.2).execute({})


def test_missing_table_and_bad_input_fail_without_retry(ch_conn):
    from airflow.sdk.exceptions import AirflowFailException

    load({"A": minutes(1)})
    with pytest.raises(
        AirflowFailException, match=r"connection 'ch_fresh'.*: ClickHouse table 'NoSuchHistory' does not"
    ):
        sensor(table="NoSuchHistory").execute({})
    with pytest.raises(AirflowFailException, match=r"Invalid table 'History; DROP TABLE x'"):
        sensor(table="History; DROP TABLE x").poke({})
    with pytest.raises(AirflowFailException, match=r"Invalid tags \[\]"):
        sensor(tags=[]).poke({})
    with pytest.raises(ValueError, match=r"Invalid max_lag of t '5 minutes'"):
        sensor(task_id="t", max_lag="5 minutes")
    with hook().session() as client:
        client.command("CREATE TABLE NotHistory (ts DateTime) ENGINE = MergeTree ORDER BY ts")
    with pytest.raises(AirflowFailException, match="has no column TagName, DateTime"):
        sensor(table="NotHistory").poke({})


def test_a_newest_row_older_than_the_horizon_still_gets_its_exact_lag(ch_conn):
    load({"A": [timedelta(days=3)], "B": [timedelta(days=40)], "C": minutes(1)})
    s = sensor(max_lag="5m", search_horizon="1h")
    assert s.poke({}) is not False  # C is fresh, so the table is
    assert s.poke({}).xcom_value["lag_seconds"] < 120
    assert sensor(tags=["A", "B", "C"]).poke({}) is False
    summary = sensor(tags=["A", "B", "C"])._check().to_xcom()
    assert summary["stale_count"] == 2
    assert abs(summary["stale"]["A"] - 3 * 86400) < 60 and abs(summary["stale"]["B"] - 40 * 86400) < 60
    assert summary["oldest_tag"] == "B"


def test_the_first_read_is_pruned_to_recent_parts(ch_conn):
    """The claims of docs/freshness-sensor.md: the bounded read selects only the newest partition and,
    by the (TagName, DateTime) key, only its recent granules; the overall fallback reads part metadata;
    a tag's fallback reads backwards along the key and stops after one row."""
    now = datetime.now(UTC)
    h = hook()
    with h.session() as client:
        h.ensure_history_table(client, DEFAULT_TABLE)
        # 120 days of 4 tags at one row every 30 s (1.4M rows) in monthly partitions, newest 1 min old.
        client.command(
            f"INSERT INTO {DEFAULT_TABLE} (DateTime, TagName, Value) "
            "SELECT {now:DateTime64(6, 'UTC')} - toIntervalSecond(intDiv(number, 4) * 30 + 60), "
            "concat('T', toString(number % 4)), number FROM numbers(4 * 2 * 60 * 24 * 120)",
            parameters={"now": now},
        )
        since = now - timedelta(hours=1)
        parts, granules, recent = client.query(
            "SELECT count(), sum(marks), countIf(partition >= {month:String}) FROM system.parts "
            "WHERE active AND database = currentDatabase() AND table = {table:String}",
            parameters={"table": DEFAULT_TABLE, "month": since.strftime("%Y%m")},
        ).result_rows[0]

        def explain(sql, **params):
            plan = client.query(f"EXPLAIN indexes = 1, actions = 1 {sql}", parameters=params).result_rows
            return "\n".join(r[0] for r in plan)

        bounded = explain(recent_sql(DEFAULT_TABLE, per_tag=False), since=since)
        per_tag = explain(recent_sql(DEFAULT_TABLE, per_tag=True), since=since, tags=["T1"])
        fallback = explain(table_newest_sql(DEFAULT_TABLE))
        tag_fallback = explain(tags_newest_sql(DEFAULT_TABLE, 1), t0="T1")

    def selected(plan: str, what: str, index: int) -> tuple[int, int]:
        a, b = plan.split(f"{what}: ")[index].split()[0].split("/")
        return int(a), int(b)

    assert parts >= 5 and granules > 150 and recent < parts
    # The min/max index keeps only the parts of the month(s) the last hour falls in ...
    kept, of = selected(bounded, "Parts", 2)  # the Min-Max line
    assert of == parts and kept <= recent, bounded
    # ... and the (TagName, DateTime) key only the granules of the last hour: 4 tags, not the month.
    assert selected(bounded, "Granules", -1)[0] <= 8, bounded
    assert selected(per_tag, "Granules", -1)[0] <= 2, per_tag
    assert "_minmax_count_projection" in fallback, fallback
    # A tag's newest row: read backwards along the key from that tag's granules, stopped by LIMIT 1.
    assert "Read type: InReverseOrder" in tag_fallback and "Limit 1" in tag_fallback, tag_fallback


# -- the trigger -----------------------------------------------------------------------------------


def test_trigger_serialize_round_trip():
    from airflow.sdk._shared.module_loading import import_string

    trig = trigger(
        table="db.History",
        tags=["A", "B*[1]"],
        max_lag_seconds=90,
        search_horizon_seconds=7200,
        poll_interval=5,
        deadline="2026-12-01T00:00:00+00:00",
    )
    classpath, kwargs = trig.serialize()
    assert classpath == "airflow_backfill_provider.triggers.clickhouse.ClickHouseFreshnessTrigger"
    json.dumps(kwargs)  # primitives only
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["tags"] == ["A", "B*[1]"] and kwargs["deadline"] == "2026-12-01T00:00:00+00:00"


def test_trigger_fires_success_when_fresh(ch_conn):
    load({"A": minutes(2), "B": minutes(1)})
    event = asyncio.run(first_event(trigger(tags=["A", "B"], poll_interval=0.1)))
    assert event["status"] == "success" and event["tags"] == ["A", "B"]
    assert event["report"]["fresh"] is True and event["report"]["oldest_tag"] == "A"
    assert "fresh for all 2 tag(s)" in event["message"]


def test_trigger_errors_at_its_deadline_naming_the_stale_tags(ch_conn):
    load({"A": minutes(1), "B": minutes(20)})
    deadline = (datetime.now(UTC) + timedelta(seconds=0.6)).isoformat()
    started = time.monotonic()
    event = asyncio.run(first_event(trigger(tags=["A", "B"], poll_interval=0.2, deadline=deadline)))
    assert 0.5 < time.monotonic() - started < 60  # waited until the deadline, then stopped
    assert event["status"] == "error" and event["reason"] == "timeout"
    assert "B lag 20m" in event["message"] and "A lag" not in event["message"]
    assert event["report"]["stale"].keys() == {"B"}


def test_trigger_turns_errors_into_events(ch_conn):
    load({})
    event = asyncio.run(first_event(trigger(table="Missing")))
    assert event["status"] == "error" and event["reason"] == "configuration"
    assert "'Missing' does not exist" in event["message"]
    event = asyncio.run(first_event(trigger(deadline="not a time")))
    assert event["reason"] == "configuration" and "Invalid deadline 'not a time'" in event["message"]


def test_trigger_sees_data_arrive_and_never_blocks_the_loop(ch_conn):
    """While stale, the trigger sleeps without the embedded lock (a writer gets in), and a check that
    waits for the lock waits in a thread (the event loop keeps ticking)."""
    from airflow_backfill_provider.hooks.clickhouse import file_lock

    load({"A": minutes(20)})

    def write_fresh_row_later():
        time.sleep(0.5)
        load({"A": minutes(0)})

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        writer = threading.Thread(target=write_fresh_row_later)
        writer.start()
        try:
            event = await first_event(trigger(poll_interval=0.2))
        finally:
            writer.join()
        # Now hold the lock ourselves: the trigger's next check must wait for it off the loop.
        with file_lock(hook().chdb_path + ".lock"):
            before = ticks
            pending = asyncio.create_task(first_event(trigger(poll_interval=0.2)))
            await asyncio.sleep(0.5)
            assert not pending.done()
            ticked = ticks - before
        second = await pending
        tick_task.cancel()
        return event, second, ticked

    event, second, ticked = asyncio.run(main())
    assert event["status"] == "success" and event["report"]["lag_seconds"] < 60
    assert second["status"] == "success"
    assert ticked >= 5  # a blocked loop would not tick at all


# -- deferrable mode -------------------------------------------------------------------------------


def test_deferrable_execute_defers_only_when_stale(ch_conn):
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_backfill_provider.triggers.clickhouse import ClickHouseFreshnessTrigger

    load({"A": minutes(1), "B": minutes(20)})
    assert sensor(tags="A", deferrable=True).execute({})["fresh"] is True
    s = sensor(tags=["A", "B"], deferrable=True, poke_interval=7, timeout=120)
    before = datetime.now(UTC)
    with pytest.raises(TaskDeferred) as deferred:
        s.execute({})
    trig = deferred.value.trigger
    assert isinstance(trig, ClickHouseFreshnessTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trig.serialize()
    assert kwargs["tags"] == ["A", "B"] and kwargs["max_lag_seconds"] == 300 and kwargs["poll_interval"] == 7
    deadline = datetime.fromisoformat(kwargs["deadline"])
    assert before + timedelta(seconds=119) < deadline < datetime.now(UTC) + timedelta(seconds=121)
    # Airflow's own deferral timeout is a backstop after the trigger's deadline.
    assert deferred.value.timeout > timedelta(seconds=120)


def test_execute_complete_success_and_errors(ch_conn):
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )

    load({"A": minutes(1), "B": minutes(20)})
    s = sensor(tags=["A", "B"], deferrable=True, timeout=60)
    fresh = asyncio.run(first_event(trigger(tags=["A"])))
    assert s.execute_complete({}, fresh) == fresh["report"]

    stale = asyncio.run(first_event(trigger(tags=["A", "B"], deadline=datetime.now(UTC).isoformat())))
    with pytest.raises(AirflowSensorTimeout, match=r"timed out after 60s\. .*B lag 20m"):
        s.execute_complete({}, stale)
    with pytest.raises(AirflowFailException, match="does not exist"):
        s.execute_complete({}, asyncio.run(first_event(trigger(table="Missing"))))
    with pytest.raises(AirflowException, match=r"freshness of WonderwareHistory failed: OSError: boom"):
        s.execute_complete(
            {}, {"status": "error", "reason": "error", "message": "OSError: boom", "table": DEFAULT_TABLE}
        )
    # soft_fail turns a timeout after deferral into a skip (BaseSensorOperator.resume_execution).
    soft = sensor(tags=["A", "B"], deferrable=True, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.resume_execution("execute_complete", {"event": stale}, {})


# -- real Airflow runs: reschedule and deferrable through dag.test() -------------------------------


def test_reschedule_and_deferrable_modes_under_dag_test(ch_conn, airflow_db):
    import pendulum
    from airflow.sdk import DAG

    from airflow_backfill_provider.sensors.clickhouse import ClickHouseFreshnessSensor
    from airflow_backfill_provider.testing.dag_runs import register_dag, reschedule_count, task_states, xcom

    common = {"clickhouse_conn_id": CONN, "max_lag": "5m", "retries": 0}
    with DAG(
        f"freshness_{uuid.uuid4().hex[:8]}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)
    ) as dag:
        ClickHouseFreshnessSensor(task_id="reschedule_fresh", tags=["A"], mode="reschedule", **common)
        ClickHouseFreshnessSensor(
            task_id="reschedule_stale",
            tags=["A", "B"],
            mode="reschedule",
            poke_interval=0.5,
            timeout=2,
            **common,
        )
        ClickHouseFreshnessSensor(task_id="deferrable_fresh", tags="{{ 'A' }}", deferrable=True, **common)
        ClickHouseFreshnessSensor(
            task_id="deferrable_stale", tags=["B"], deferrable=True, poke_interval=0.3, timeout=1, **common
        )
    register_dag(dag)
    load({"A": minutes(0), "B": minutes(20)})
    dr = dag.test(logical_date=pendulum.datetime(2026, 1, 5, tz="UTC"))

    assert task_states(dr) == {
        "reschedule_fresh": "success",
        "reschedule_stale": "failed",
        "deferrable_fresh": "success",
        "deferrable_stale": "failed",
    }
    assert reschedule_count(dr, "reschedule_fresh") == 0
    assert reschedule_count(dr, "reschedule_stale") >= 1  # really rescheduled, then timed out
    assert xcom(dr, "reschedule_fresh")["fresh"] is True
    assert xcom(dr, "deferrable_fresh")["oldest_tag"] == "A"  # the template was rendered
    assert xcom(dr, "reschedule_stale") is None
