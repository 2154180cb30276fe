"""Task logic of the ``missing_workflow_backfill`` DAG: resolve_spec, the dry-run rule and summary."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Variable

from airflow_backfill_provider.exceptions import ConfigurationError, fail_without_retry
from airflow_backfill_provider.params.missing_workflow_backfill import WINDOW_PARAMS
from airflow_backfill_provider.tasks.runs import (
    SCHEDULED,
    RunInfo,
    dry_run,
    note_on_run,
    require_triggered,
    skip_run,
    upstream_result,
)
from airflow_backfill_provider.workflows.status import CLASSES

log = logging.getLogger("airflow.task")


def resolve_spec(
    params: Mapping[str, Any],
    *,
    spec_variable: str,
    spec_file: str | None,
    run: RunInfo | None = None,
) -> Any:
    """The raw workflow spec (kept in XCom for the record; ``find_gaps`` validates it).

    First found wins: the ``spec`` Param, the file of the ``spec_file`` Param, the Airflow Variable
    ``spec_variable`` (JSON, read now, at run time), the file ``spec_file``. No spec skips a
    scheduled run, saying why (a deployment that has not configured one yet: its daily runs stay
    quiet, not red), and fails any other run without retry, as does a file that cannot be read; so
    does, with ``run``, an explicit interval in a scheduled or backfill run. The run's mode is
    logged: nothing passes as a dry run unnoticed.
    """
    with fail_without_retry():
        if run is not None:
            require_triggered(params, WINDOW_PARAMS, run)
        try:
            source, raw = _find_spec(params, spec_variable, spec_file)
        except NoSpecError as err:
            if run is not None and run.run_type == SCHEDULED:
                skip_run(f"This {run.describe()} checks nothing: {err}")
            raise
    log.info("Workflow spec from %s", source)
    if run is not None:
        if dry_run(run, params.get("dry_run")):
            log.info("Dry run (%s): replacements are reported, none started or recorded.", run.describe())
        else:
            log.info("Real run (%s): replacements will be started and recorded.", run.describe())
    return raw


def dry_run_of(dag_run: Any, params: Mapping[str, Any]) -> bool:
    """The ``backfill`` task's dry-run flag (a template macro of the DAG): see :func:`.runs.dry_run`."""
    return dry_run(RunInfo.of(dag_run), params.get("dry_run"))


class NoSpecError(ConfigurationError):
    """No workflow spec is configured anywhere."""


def _find_spec(params: Mapping[str, Any], spec_variable: str, spec_file: str | None) -> tuple[str, Any]:
    if params.get("spec"):
        return "the 'spec' Param", params["spec"]
    path = params.get("spec_file") or None
    raw = None
    source = ""
    if path is None:
        raw = Variable.get(spec_variable, default=None, deserialize_json=True)
        source = f"Variable {spec_variable!r}"
        path = spec_file if raw is None else None
    if path:
        source = f"file {path}"
        try:
            with open(path) as f:
                raw = json.load(f)
        except (OSError, ValueError) as err:
            raise ConfigurationError(f"Cannot read the workflow spec from {path}: {err}") from err
    if raw is None:
        raise NoSpecError(
            "No workflow spec: pass the 'spec' or 'spec_file' Param, set the Variable "
            f"{spec_variable!r}, or point MISSING_WORKFLOW_BACKFILL_SPEC_FILE at a JSON file."
        )
    return source, raw


def summary(found: list[dict] | None, backfilled: dict | None, ti: Any) -> dict:
    """Counts per class over the specs, the ids started, on the run's note; the run fails if
    find_gaps or backfill failed, and skips (not a quiet green) only if they skipped.

    :param found: ``find_gaps``'s output, one entry per spec (``None`` if it did not finish).
    :param backfilled: ``backfill``'s output (``None`` if it did not finish).
    :param ti: this task instance (to learn how an upstream task without output ended).
    """
    found = upstream_result(ti, "find_gaps", found, then="summarize")
    result: dict = {"specs": [e["spec"] for e in found], "counts": dict.fromkeys(CLASSES, 0)}
    for entry in found:
        for cls, n in entry["counts"].items():
            result["counts"][cls] += n
        counts = "  ".join(f"{c}={n}" for c, n in entry["counts"].items() if n) or "no keys"
        log.info("%s [%s, %s): %s", entry["spec"], entry["interval_start"], entry["interval_end"], counts)
    per_class = "  ".join(f"{c}={n}" for c, n in result["counts"].items())
    log.info("Keys per class: %s", per_class)
    specs = ", ".join(f"{e['spec']} [{e['interval_start']}, {e['interval_end']})" for e in found) or "no spec"
    if backfilled is None:
        note_on_run(f"{specs}: {per_class}. The backfill did not run.")
    backfilled = upstream_result(ti, "backfill", backfilled, then="summarize")
    result.update(backfilled)
    _log_backfilled(backfilled)
    ids = backfilled["would_start"] if backfilled["dry_run"] else backfilled["started"]
    note_on_run(
        f"{specs}: {per_class}. {'Dry run: would start' if backfilled['dry_run'] else 'Started'} "
        f"{len(ids)} replacement(s)"
        + (f", {len(backfilled['exhausted'])} with attempts used up" if backfilled["exhausted"] else "")
        + "."
    )
    return result


def _log_backfilled(backfilled: Mapping[str, Any]) -> None:
    verb = "Would start" if backfilled["dry_run"] else "Started"
    ids = backfilled["would_start"] if backfilled["dry_run"] else backfilled["started"]
    log.info("%s %d replacement(s): %s", verb, len(ids), ", ".join(ids) or "-")
    if backfilled["attached"]:
        log.info("Already started earlier (re-attached): %s", ", ".join(backfilled["attached"]))
    if backfilled["exhausted"]:
        log.warning("Attempts used up, not replaced: %s", ", ".join(backfilled["exhausted"]))
    log.info("Backfill requests recorded: %d new", backfilled["recorded"])
