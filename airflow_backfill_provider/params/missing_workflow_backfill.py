"""Params of the ``missing_workflow_backfill`` DAG (documented in docs/missing-workflow-backfill.md)."""

from __future__ import annotations

from airflow.sdk import Param

from airflow_backfill_provider.params import instant_param, number_range

SPEC = "Workflow spec"
MODE = "Mode"
WINDOW = "Explicit interval (manual runs only)"
# The explicit interval's (start, end) Params: both or neither, end after start.
WINDOW_PARAMS = ("interval_start", "interval_end")


def params() -> dict[str, Param]:
    """A fresh Params dict for the DAG (Param objects hold their value: never share them)."""
    return {
        "spec": Param(
            None,
            type=["null", "object", "array"],
            title="Workflow spec (JSON)",
            description_md='The workflow spec as JSON: one spec, a list, or `{"workflows": [...]}`, e.g. '
            '`{"workflow_type": "ReindexConversations", "task_queue": "reindex", "id_template": '
            '"reindex-{key}-{interval_start:%Y%m%d}", "keys": ["acme"]}`. Empty: the *Spec file*, '
            "then the Airflow Variable, then `MISSING_WORKFLOW_BACKFILL_SPEC_FILE`.",
            section=SPEC,
        ),
        "spec_file": Param(
            None,
            type=["null", "string"],
            minLength=1,
            title="Spec file",
            description_md="Path of a JSON spec file on the workers, e.g. "
            "`/opt/airflow/specs/reindex.json`; read when *Workflow spec* is empty.",
            section=SPEC,
        ),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run (report only, start nothing)",
            description_md="On (the default for a triggered run): classify and report only, start and "
            "record nothing; the summary lists what it would start, e.g. `Would start 2 "
            "replacement(s): …`. Turn it off to start them. Scheduled runs and backfills start them "
            'unless their own conf sets `"dry_run": true`.',
            section=MODE,
        ),
        "max_starts": Param(
            100,
            type="integer",
            allOf=number_range(0),
            title="Most replacements to start",
            description_md="Refuse to start more replacements than this in one run (then nothing is "
            "started), e.g. `100`. A wrong id template makes every key look missing: review with "
            "*Dry run* first.",
            section=MODE,
        ),
        "allow_beyond_retention": Param(
            False,
            type="boolean",
            title="Check intervals beyond the retention",
            description_md="Off (the default): an interval that starts before now minus the Temporal "
            "namespace's retention (24 h on a default dev server) is refused, in a dry run too, since "
            "executions of it that completed may have been deleted and would look missing. On: check it "
            "anyway, e.g. when its workflows never ran; every key Temporal no longer lists is a gap.",
            section=MODE,
        ),
        "interval_start": instant_param(
            "Interval start",
            "Check this interval instead of the run's data interval: its first instant (UTC unless it "
            "has an offset), e.g. `2026-01-01T00:00:00Z`. Set *Interval end* too. **Manual runs "
            "only**: a backfill or scheduled run with it fails at once; leave it empty in the "
            "Backfill dialog.",
            section=WINDOW,
        ),
        "interval_end": instant_param(
            "Interval end (exclusive)",
            "End of that interval, not included, e.g. `2026-01-02T00:00:00Z` for the whole of "
            "1 January 2026. **Manual runs only**, like *Interval start*.",
            section=WINDOW,
        ),
    }
