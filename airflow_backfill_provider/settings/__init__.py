"""Per-DAG deployment settings: frozen objects built from environment variables, validated, no I/O.

``WonderwareBackfillSettings.from_env()``, ``MissingWorkflowBackfillSettings.from_env()`` and
``K8sJobBackfillSettings.from_env()`` are what the DAG files read at parse time; the variables are documented in docs/ on each DAG's page.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

# Each DAG file imports its own settings module; the names here are imported on first use, so
# parsing one DAG never imports (and validates) the other DAGs' settings.
_MODULES = {
    "K8sJobBackfillSettings": "k8s_job_backfill",
    "MissingWorkflowBackfillSettings": "missing_workflow_backfill",
    "WonderwareBackfillSettings": "wonderware_backfill",
    "WonderwareSyncSettings": "wonderware_sync",
}

if TYPE_CHECKING:
    from airflow_backfill_provider.settings.k8s_job_backfill import K8sJobBackfillSettings
    from airflow_backfill_provider.settings.missing_workflow_backfill import MissingWorkflowBackfillSettings
    from airflow_backfill_provider.settings.wonderware_backfill import WonderwareBackfillSettings
    from airflow_backfill_provider.settings.wonderware_sync import WonderwareSyncSettings

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
