"""Per-DAG deployment settings: frozen objects built from environment variables, validated, no I/O.

``WonderwareBackfillSettings.from_env()``, ``MissingWorkflowBackfillSettings.from_env()`` and
``K8sJobBackfillSettings.from_env()`` are what the DAG files read at parse time; the variables are documented in docs/ on each DAG's page.
"""

from __future__ import annotations

from airflow_backfill_provider.settings.k8s_job_backfill import K8sJobBackfillSettings
from airflow_backfill_provider.settings.missing_workflow_backfill import MissingWorkflowBackfillSettings
from airflow_backfill_provider.settings.wonderware_backfill import WonderwareBackfillSettings
from airflow_backfill_provider.settings.wonderware_sync import WonderwareSyncSettings

__all__ = [
    "K8sJobBackfillSettings",
    "MissingWorkflowBackfillSettings",
    "WonderwareBackfillSettings",
    "WonderwareSyncSettings",
]
