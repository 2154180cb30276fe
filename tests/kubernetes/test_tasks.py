"""The k8s_job_backfill DAG's settings and task logic, called directly (no services, no DAG run)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.settings.k8s_job_backfill import K8sJobBackfillSettings
from airflow_backfill_provider.tasks import k8s_job_backfill as steps
from airflow_backfill_provider.tasks.runs import RunInfo

UTC = timezone.utc
JAN1, JAN2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
CONFIG = {"clusters": [{"name": "us-east-1-prod", "customers": [{"id": "sunbit"}, {"id": "acme"}]}]}
PARAMS = {"config": CONFIG, "config_file": None, "clusters": [], "customers": [], "dry_run": True}
SETTINGS = K8sJobBackfillSettings.from_env({"AIRFLOW_HOME": "/opt/airflow"})


def plan(params=PARAMS, run_type="manual", settings=SETTINGS, exists=lambda conn_id: True, **run):
    info = RunInfo(run_type, data_interval_start=JAN1, data_interval_end=JAN2, **run)
    return steps.plan(params, settings=settings, run=info, connection_exists=exists)


def test_settings_defaults_are_safe_and_variables_are_checked():
    s = SETTINGS
    assert (s.schedule, s.start_date, s.catchup, s.scheduled_runs) == ("@daily", None, False, False)
    assert (
        s.defaults.temporal_namespace == "ingestion"
        and s.defaults.cronjob == "cron-batch-reindex-conversations"
    )
    assert s.tracking_path == "file:///opt/airflow/k8s_job_backfill" and s.max_parallel_jobs == 16
    assert (s.start_env, s.end_env, s.customers_env) == (
        "REINDEX_START_TIME",
        "REINDEX_END_TIME",
        "RUN_ONLY_FOR_CUSTOMER_IDS",
    )
    custom = K8sJobBackfillSettings.from_env(
        {"K8S_JOB_BACKFILL_START_DATE": "2026-01-01", "K8S_JOB_BACKFILL_CATCHUP": "true",
         "K8S_JOB_BACKFILL_TEMPORAL_NAMESPACE": "scorecards", "K8S_JOB_BACKFILL_POLL_INTERVAL": "5s"}
    )  # fmt: skip
    assert custom.catchup and custom.scheduled_runs and custom.defaults.temporal_namespace == "scorecards"
    assert custom.poll_interval == timedelta(seconds=5)
    with pytest.raises(
        ConfigurationError, match="K8S_JOB_BACKFILL_CATCHUP is true but K8S_JOB_BACKFILL_START_DATE"
    ):
        K8sJobBackfillSettings.from_env({"K8S_JOB_BACKFILL_CATCHUP": "true"})
    with pytest.raises(
        ConfigurationError, match="K8S_JOB_BACKFILL_MAX_ACTIVE_RUNS must be a positive integer"
    ):
        K8sJobBackfillSettings.from_env({"K8S_JOB_BACKFILL_MAX_ACTIVE_RUNS": "0"})


def test_a_triggered_run_plans_a_dry_run_with_the_interval_in_the_env():
    p = plan()
    assert p["dry_run"] is True and p["interval"] == [
        "2026-01-01T00:00:00+00:00",
        "2026-01-02T00:00:00+00:00",
    ]
    assert [j["customer"] for j in p["jobs"]] == ["sunbit", "acme"]
    assert p["jobs"][0] == {
        "cluster": "us-east-1-prod", "customer": "sunbit", "kubernetes_conn_id": "kubernetes_us_east_1_prod",
        "namespace": None, "cronjob_name": "cron-batch-reindex-conversations", "container": None,
        "env": {"REINDEX_START_TIME": "2026-01-01T00:00:00+00:00", "REINDEX_END_TIME": "2026-01-02T00:00:00+00:00",
                "RUN_ONLY_FOR_CUSTOMER_IDS": "sunbit"},
        "dry_run": True,
    }  # fmt: skip
    assert p["clusters"] == {
        "us-east-1-prod": {"temporal_conn_id": "temporal_us_east_1_prod", "namespace": "ingestion"}
    }
    assert [j["customer"] for j in plan({**PARAMS, "customers": ["acme"]})["jobs"]] == ["acme"]


def test_backfill_runs_are_real_and_scheduled_runs_wait_for_a_start_date():
    # `airflow backfill create` makes runs of type backfill: each creates its interval's Jobs.
    assert plan(run_type="backfill")["dry_run"] is False
    assert plan(run_type="backfill", conf={"dry_run": True})["dry_run"] is True
    with pytest.raises(
        AirflowSkipException, match="Scheduled runs are off until K8S_JOB_BACKFILL_START_DATE is set"
    ):
        plan(run_type="scheduled")
    started = K8sJobBackfillSettings.from_env({"K8S_JOB_BACKFILL_START_DATE": "2026-01-01"})
    assert plan(run_type="scheduled", settings=started)["dry_run"] is False


def test_a_cluster_without_a_connection_fails_before_any_job():
    with pytest.raises(AirflowFailException, match="Cluster us-east-1-prod has no Airflow connection "
                       r"'temporal_us_east_1_prod' \(type temporal\)"):  # fmt: skip
        plan(exists=lambda conn_id: conn_id.startswith("kubernetes"))


def test_config_from_a_file_a_variable_and_clear_errors(tmp_path, monkeypatch):
    base = {**PARAMS, "config": None}
    good = tmp_path / "config.json"
    good.write_text(json.dumps(CONFIG))
    assert steps.find_config({**base, "config_file": str(good)}, SETTINGS) == (f"file {good}", CONFIG)
    monkeypatch.setenv("AIRFLOW_VAR_K8S_JOB_BACKFILL_CONFIG", json.dumps(CONFIG))
    assert steps.find_config(base, SETTINGS) == ("Variable 'k8s_job_backfill_config'", CONFIG)
    monkeypatch.delenv("AIRFLOW_VAR_K8S_JOB_BACKFILL_CONFIG")
    with pytest.raises(
        ConfigurationError, match="No backfill config: pass the 'config' or 'config_file' Param"
    ):
        steps.find_config(base, SETTINGS)
    bad = tmp_path / "bad.json"
    bad.write_text('{"clusters": [{"name": "us",}]}')
    with pytest.raises(AirflowFailException, match=f"The backfill config in file {bad} is not valid JSON: "):
        plan({**base, "config_file": str(bad)})
    with pytest.raises(
        AirflowFailException, match=f"Cannot read the backfill config file {tmp_path}/none.json"
    ):
        plan({**base, "config_file": str(tmp_path / "none.json")})
    with pytest.raises(AirflowFailException, match=r"Cluster filter \['eu'\] names no cluster"):
        plan({**PARAMS, "clusters": ["eu"]})


def test_sensor_batches_and_tracked_jobs_keep_failed_jobs_in_view():
    p = plan()
    found = [[{"workflow_id": "w1"}, {"workflow_id": "w2"}], None]  # acme's create_job failed
    assert steps.sensor_batches(p, found) == [
        {
            "workflow_ids": ["w1", "w2"],
            "temporal_conn_id": "temporal_us_east_1_prod",
            "namespace": "ingestion",
        }
    ]
    records = [{"job_name": "j1", "namespace": "cron", "created": True}, None]
    jobs = steps.tracked_jobs(p, found, records)
    assert [(j["customer"], j["job_name"], len(j["workflows"]), j.get("error")) for j in jobs] == [
        ("sunbit", "j1", 2, None),
        ("acme", None, 0, "the create_job task failed: see its log"),
    ]
    assert steps.sensor_batches(p, [[], []]) == []
    assert steps.tracking_path(
        "s3://bucket/backfills/", "k8s_job_backfill", "manual__2026-01-02T00:00:00+00:00"
    ) == ("s3://bucket/backfills/k8s_job_backfill/manual__2026-01-02T00_00_00_00_00/backfill_tracking.json")


def test_report_writes_the_file_and_fails_naming_jobs_and_workflows(tmp_path):
    p = plan()
    jobs = steps.tracked_jobs(p, [[{"workflow_id": "w1"}], None], [{"job_name": "j1"}, None])
    path = f"file://{tmp_path}/r/backfill_tracking.json"
    with pytest.raises(AirflowFailException) as err:
        steps.report(p, jobs, {"w1": "TimedOut"}, path=path, dag_id="d", run_id="r")
    assert str(err.value) == (
        "1 Job(s) failed to create or report workflows: us-east-1-prod/acme; "
        f"1 workflow(s) did not complete: w1 (TimedOut). Tracking file: {path}"
    )
    doc = json.loads((tmp_path / "r" / "backfill_tracking.json").read_text())
    assert doc["summary"]["counts"] == {"TimedOut": 1} and doc["jobs"][1]["error"]
    ok = steps.report(p, jobs[:1], {"w1": "Completed"}, path=path, dag_id="d", run_id="r")
    assert ok["summary"]["failed"] == [] and ok["path"] == path
