"""Params of the ``k8s_job_backfill`` DAG (documented in docs/kubernetes.md)."""

from __future__ import annotations

from airflow.sdk import Param

from airflow_backfill_provider.params import optional_list

CONFIG = "Clusters and customers"
FILTERS = "Filters"
MODE = "Mode"


def params() -> dict[str, Param]:
    """A fresh Params dict for the DAG (Param objects hold their value: never share them)."""
    return {
        "config": Param(
            None,
            type=["null", "object"],
            title="Backfill config (JSON)",
            description_md="The clusters and their customers, in the shape of the seed's config.json, e.g. "
            '`{"clusters": [{"name": "us-east-1-prod", "customers": [{"id": "sunbit", "profile": '
            '"default"}]}]}`. Empty: the *Config file*, then the Airflow Variable, then '
            "`K8S_JOB_BACKFILL_CONFIG_FILE`.",
            section=CONFIG,
        ),
        "config_file": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Config file",
            description_md="Path of a JSON config file on the workers, e.g. `/opt/airflow/config/backfill.json`; "
            "read when *Backfill config* is empty.",
            section=CONFIG,
        ),
        "clusters": optional_list(
            "Only these clusters",
            "Create Jobs on these clusters of the config only, e.g. `us-east-1-prod`. "
            "Empty: every cluster. A name the config does not have fails the run, naming the known ones.",
            section=FILTERS,
            items={"type": "string", "minLength": 1},
            uniqueItems=True,
        ),
        "customers": optional_list(
            "Only these customers",
            "Create Jobs for these customer ids only, e.g. `sunbit`, on every selected "
            "cluster that has them. Empty: every customer.",
            section=FILTERS,
            items={"type": "string", "minLength": 1},
            uniqueItems=True,
        ),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run (render the Jobs, create nothing)",
            description_md="On (the default for a triggered run): log each Job's manifest and create "
            "nothing; the tracking file records the Jobs that would be created. Turn it off to create "
            "them. Scheduled runs and backfills create them unless their own conf sets "
            '`"dry_run": true`.',
            section=MODE,
        ),
    }
