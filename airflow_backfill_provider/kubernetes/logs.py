"""Find the workflow ids a Job's pods print: the log pattern, the parsing, when a scan is done."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_backfill_provider.exceptions import ConfigurationError

# The line the seed's reindex jobs log (Go's %s verbs), one per workflow they start.
DEFAULT_PATTERN = "Created reindex conversations job: name=%s, execution_id=%s, cluster=%s"
# What the %s of a printf-style pattern stand for, in order.
DEFAULT_FIELDS = ("job_resource_name", "workflow_id", "cluster")
RESULT_FIELDS = ("job_resource_name", "workflow_id", "cluster")
# A %s value: up to the next comma or blank, so "name=a, execution_id=b" splits where it should.
_VALUE = r"[^\s,]+"


class NoMatchingLogLineError(ConfigurationError):
    """The pods of a Job finished (or the wait ran out) without one line matching the pattern."""


def compile_pattern(pattern: str, fields: Sequence[str] = DEFAULT_FIELDS) -> re.Pattern[str]:
    """The regular expression for ``pattern``.

    Either printf-style, the literal text of the line with one ``%s`` per field of ``fields``
    (``workflow_id`` among them), or a regular expression with named groups, at least
    ``(?P<workflow_id>...)`` and optionally ``job_resource_name`` and ``cluster``.
    """
    if "(?P<" in pattern:
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise ConfigurationError(
                f"Log pattern {pattern!r} is not a valid regular expression: {err}"
            ) from err
        if "workflow_id" not in regex.groupindex:
            raise ConfigurationError(
                f"Log pattern {pattern!r} has no (?P<workflow_id>...) group: name the group that "
                "captures the Temporal workflow id."
            )
        return regex
    parts = pattern.split("%s")
    if len(parts) - 1 != len(fields) or "workflow_id" not in fields:
        raise ConfigurationError(
            f"Log pattern {pattern!r} has {len(parts) - 1} %s but the fields are {list(fields)}: give one "
            "%s per field, workflow_id among them (or a regular expression with (?P<workflow_id>...))."
        )
    body = re.escape(parts[0])
    for name, literal in zip(fields, parts[1:], strict=True):
        body += f"(?P<{name}>{_VALUE})" + re.escape(literal)
    return re.compile(body)


def parse_lines(text: str, regex: re.Pattern[str], *, complete: bool) -> list[dict[str, Any]]:
    """``{job_resource_name, workflow_id, cluster}`` of each matching line, in log order.

    :param complete: the log is final (the container ended). Otherwise the last line, without its
        newline yet, may still be being written and is left for the next read.
    """
    lines = text.split("\n")
    if not complete and not text.endswith("\n"):
        lines = lines[:-1]
    found = []
    for line in lines:
        m = regex.search(line)
        if m and m.group("workflow_id"):
            groups = m.groupdict()
            found.append({f: groups.get(f) for f in RESULT_FIELDS})
    return found


def unique(found: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """First entry per workflow id: a restarted container and its previous run may log the same id."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in found:
        seen.setdefault(entry["workflow_id"], entry)
    return list(seen.values())


@dataclass
class PodScan:
    """What one read of a pod's logs (its restarted containers' previous runs included) gave.

    ``current`` is whether the containers' current runs matched: a restarted container's earlier
    run may have logged a workflow, and its current run may still log another.
    """

    pod: str
    finished: bool
    lines: int = 0
    found: list[dict[str, Any]] = field(default_factory=list)
    current: bool = False


def scan_done(scans: Sequence[PodScan], *, job_finished: bool) -> bool:
    """Whether to stop reading: the Job has finished, or every pod still running printed its line.

    While the Job runs, a pod whose current container run printed nothing yet may still print it,
    so the scan waits for each running pod to match (finished pods are what they are).
    """
    if job_finished:
        return True
    if not any(s.found for s in scans):
        return False
    return all(s.current or s.finished for s in scans)


def no_match_message(job: str, namespace: str, scans: Sequence[PodScan], pattern: str, why: str) -> str:
    if not scans:
        return f"Job {job} in namespace {namespace} has no pods to read logs from ({why})."
    read = ", ".join(f"{s.pod} ({s.lines} lines)" for s in scans[:10])
    return (
        f"No line of the logs of Job {job} in namespace {namespace} matches the log pattern {pattern!r} "
        f"({why}); pods read: {read}. Check the pattern against `kubectl logs -n {namespace} "
        f"job/{job}`, or whether the job logged the workflows it started."
    )
