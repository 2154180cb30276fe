"""Finding missing or failed workflow executions in an interval, and naming their replacements.

The LeapBackfill idea (seed 000) on Temporal: for every key (customer, resource) of a declarative
spec, the interval should hold one successful execution whose id the spec's template gives. The
actual executions come from a visibility query; each execution's history gives its start point
(``WorkflowExecutionStarted``) and its success point (``WorkflowExecutionCompleted``). A key with no
success point anywhere is a gap, and each gap gets a replacement workflow with a deterministic id
(``<expected id>-backfill-<attempt>``), so re-running the analysis never starts anything twice.

Plain Python with no Airflow or Temporal import: the hook and the DAG feed it plain values.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.utils import parse_duration, quote_identifier

# Execution statuses as Temporal's visibility spells them (``ExecutionStatus = 'TimedOut'``).
RUNNING = "Running"
COMPLETED_STATUS = "Completed"
CONTINUED_AS_NEW = "ContinuedAsNew"
FAILURE_STATUSES = ("Failed", "TimedOut", "Terminated", "Canceled")
STATUSES = (RUNNING, COMPLETED_STATUS, CONTINUED_AS_NEW, *FAILURE_STATUSES)

# The classes a key can end up in, in report order.
COMPLETED = "completed"
RUNNING_CLASS = "running"
RUNNING_TOO_LONG = "running_too_long"
FAILED = "failed"
TIMED_OUT = "timed_out"
TERMINATED = "terminated"
CANCELED = "canceled"
MISSING = "missing"
CLASSES = (COMPLETED, RUNNING_CLASS, RUNNING_TOO_LONG, FAILED, TIMED_OUT, TERMINATED, CANCELED, MISSING)
# Classes that get a replacement. Running too long is reported only: starting a second execution
# next to a live one would do the work twice.
GAP_CLASSES = (FAILED, TIMED_OUT, TERMINATED, CANCELED, MISSING)
_CLASS_OF_STATUS = {"Failed": FAILED, "TimedOut": TIMED_OUT, "Terminated": TERMINATED, "Canceled": CANCELED}

REPLACEMENT_MARK = "-backfill-"
DEFAULT_MAX_ATTEMPTS = 3
# Workflow ids per visibility query: short enough for every visibility store's query limits.
QUERY_BATCH_IDS = 200
_INTERVAL_FIELDS = ("interval_start", "interval_end")
_SPEC_FIELDS = {
    "name",
    "workflow_type",
    "task_queue",
    "namespace",
    "id_template",
    "key_name",
    "keys",
    "match",
    "args",
    "extra_query",
    "max_running",
    "max_attempts",
    "execution_timeout",
    "run_timeout",
}
_QUERY_UNSAFE = re.compile(r"['\"\\\n\r]")


class IsoDatetime(datetime):
    """A datetime that formats as ISO 8601 when a template gives no format spec.

    So ``"{interval_start}"`` renders ``2026-01-01T00:00:00+00:00`` while
    ``"{interval_start:%Y%m%d}"`` still renders ``20260101``.
    """

    def __format__(self, spec: str) -> str:
        return self.isoformat() if not spec else super().__format__(spec)

    @classmethod
    def of(cls, value: datetime) -> IsoDatetime:
        utc = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return cls.combine(utc.date(), utc.timetz())


@dataclass(frozen=True)
class Key:
    """One resource the spec expects an execution for; ``fields`` feed the templates."""

    resource_id: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class WorkflowSpec:
    """What should have run: one execution of ``workflow_type`` per key and interval.

    :param match: ``exact``: an execution belongs to a key when its id equals the rendered id (or
        is one of its replacements); ``prefix``: when its id starts with the rendered id (for ids
        that end in a random suffix, like ``reindexconversations-{customer}-{profile}-{uuid}``).
    """

    workflow_type: str
    task_queue: str
    id_template: str
    keys: tuple[Key, ...]
    name: str = ""
    namespace: str | None = None
    key_name: str = "key"
    match: str = "exact"
    args: Any = None
    extra_query: str | None = None
    max_running: timedelta | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    execution_timeout: timedelta | None = None
    run_timeout: timedelta | None = None

    @property
    def label(self) -> str:
        return self.name or self.workflow_type


# -- spec parsing ------------------------------------------------------------------------------


def parse_specs(raw: Any) -> list[WorkflowSpec]:
    """Validate a spec document: one spec object, a list of them, or ``{"workflows": [...]}``.

    A JSON string is accepted too. Every problem is a :class:`ConfigurationError` naming the spec
    and the offending value.
    """
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as err:
            raise ConfigurationError(f"The workflow spec is not valid JSON: {err}") from err
    if isinstance(raw, Mapping) and "workflows" in raw:
        extra = set(raw) - {"workflows"}
        if extra:
            raise ConfigurationError(
                f"Unknown top-level spec fields {sorted(extra)}; expected only 'workflows'."
            )
        raw = raw["workflows"]
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list) or not items:
        raise ConfigurationError(
            'The workflow spec must be an object, a non-empty list of objects or {"workflows": [...]}, '
            f"got {type(raw).__name__}."
        )
    specs = [parse_spec(item, position=i) for i, item in enumerate(items)]
    labels = [s.label for s in specs]
    dupes = sorted({n for n in labels if labels.count(n) > 1})
    if dupes:
        raise ConfigurationError(f"Workflow specs share the name(s) {dupes}; give each a distinct 'name'.")
    return specs


def parse_spec(raw: Any, position: int = 0) -> WorkflowSpec:
    """Validate one spec object (see ``docs/missing-workflow-backfill.md`` for the fields)."""
    where = f"workflow spec #{position}"
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where} must be an object, got {type(raw).__name__}.")
    where = f"workflow spec {raw.get('name') or raw.get('workflow_type') or f'#{position}'!r}"
    unknown = set(raw) - _SPEC_FIELDS
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_SPEC_FIELDS)}."
        )
    for required in ("workflow_type", "task_queue", "id_template", "keys"):
        if not raw.get(required):
            raise ConfigurationError(f"{where}: '{required}' is required and must not be empty.")
    for text_field in ("workflow_type", "task_queue", "id_template", "name", "namespace", "extra_query"):
        if raw.get(text_field) is not None and not isinstance(raw[text_field], str):
            raise ConfigurationError(f"{where}: '{text_field}' must be a string, got {raw[text_field]!r}.")
    key_name = raw.get("key_name", "key")
    if not isinstance(key_name, str) or not key_name.isidentifier():
        raise ConfigurationError(f"{where}: 'key_name' must be an identifier, got {key_name!r}.")
    match = raw.get("match", "exact")
    if match not in ("exact", "prefix"):
        raise ConfigurationError(f"{where}: 'match' must be 'exact' or 'prefix', got {match!r}.")
    keys = _parse_keys(raw["keys"], key_name, where)
    _check_id_template(raw["id_template"], key_name, keys, where)
    _check_query_safe(raw["workflow_type"], "workflow_type", where)
    max_attempts = raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise ConfigurationError(f"{where}: 'max_attempts' must be a positive integer, got {max_attempts!r}.")
    spec = WorkflowSpec(
        name=raw.get("name") or "",
        workflow_type=raw["workflow_type"],
        task_queue=raw["task_queue"],
        namespace=raw.get("namespace") or None,
        id_template=raw["id_template"],
        key_name=key_name,
        keys=keys,
        match=match,
        args=raw.get("args"),
        extra_query=raw.get("extra_query") or None,
        max_running=_duration(raw.get("max_running"), "max_running", where),
        max_attempts=max_attempts,
        execution_timeout=_duration(raw.get("execution_timeout"), "execution_timeout", where),
        run_timeout=_duration(raw.get("run_timeout"), "run_timeout", where),
    )
    if spec.args is not None and not isinstance(spec.args, list):
        raise ConfigurationError(f"{where}: 'args' must be a list of workflow arguments, got {spec.args!r}.")
    # Render once for a sample interval: template errors surface now, not in the middle of a run.
    sample = datetime(2000, 1, 1, tzinfo=timezone.utc)
    ids = [render_workflow_id(spec, k, sample, sample + timedelta(days=1)) for k in keys]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigurationError(
            f"{where}: several keys render to the same workflow id, e.g. {dupes[0]!r}; the id_template "
            "must include a field that tells the keys apart."
        )
    render_args(spec, keys[0], sample, sample + timedelta(days=1))
    return spec


def _parse_keys(raw: Any, key_name: str, where: str) -> tuple[Key, ...]:
    if not isinstance(raw, list):
        raise ConfigurationError(f"{where}: 'keys' must be a list of strings or objects, got {raw!r}.")
    keys = []
    for item in raw:
        if isinstance(item, str) and item:
            keys.append(Key(resource_id=item, fields={key_name: item}))
        elif isinstance(item, Mapping) and item:
            if not all(isinstance(k, str) and k.isidentifier() for k in item):
                raise ConfigurationError(
                    f"{where}: key {dict(item)!r} has field names that are not identifiers."
                )
            resource = item.get("resource_id", item.get(key_name))
            if resource in (None, ""):
                raise ConfigurationError(
                    f"{where}: key {dict(item)!r} has neither a '{key_name}' nor a 'resource_id' field."
                )
            values = {k: str(v) for k, v in item.items()}
            keys.append(Key(resource_id=str(resource), fields=values))
        else:
            raise ConfigurationError(f"{where}: each key must be a non-empty string or object, got {item!r}.")
    ids = [k.resource_id for k in keys]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigurationError(f"{where}: duplicate key(s) {dupes}.")
    return tuple(keys)


def _check_id_template(template: str, key_name: str, keys: Sequence[Key], where: str) -> None:
    try:
        names = {
            re.split(r"[.\[]", name, maxsplit=1)[0]
            for _, name, _, _ in string.Formatter().parse(template)
            if name is not None
        }
    except ValueError as err:
        raise ConfigurationError(f"{where}: id_template {template!r} is malformed: {err}") from err
    known = {"key", key_name, *_INTERVAL_FIELDS}
    for k in keys:
        known.update(k.fields)
    unknown = names - known
    if unknown or "" in names:
        raise ConfigurationError(
            f"{where}: id_template {template!r} uses unknown field(s) {sorted(unknown) or ['{}']}; "
            f"available: {sorted(known)}."
        )
    if not names & set(_INTERVAL_FIELDS):
        raise ConfigurationError(
            f"{where}: id_template {template!r} must contain {{interval_start...}} or {{interval_end...}}, "
            "so that every interval has its own workflow ids (e.g. '{interval_start:%Y%m%d}')."
        )


def _duration(value: Any, what: str, where: str) -> timedelta | None:
    if value in (None, ""):
        return None
    try:
        return parse_duration(value, what)
    except ValueError as err:
        raise ConfigurationError(f"{where}: {err}") from err


def _check_query_safe(value: str, what: str, where: str = "") -> str:
    # Visibility queries have no portable escaping; ids with quotes or backslashes are refused.
    if _QUERY_UNSAFE.search(value):
        raise ConfigurationError(
            f"{where + ': ' if where else ''}{what} {value!r} contains a quote, backslash or newline, "
            "which cannot be used in a Temporal visibility query."
        )
    return value


def quote_query_value(value: str) -> str:
    """Single-quote a value for a visibility query (refusing values that would need escaping)."""
    return f"'{_check_query_safe(value, 'value')}'"


# -- rendering ---------------------------------------------------------------------------------


def template_fields(key: Key, interval_start: datetime, interval_end: datetime) -> dict[str, Any]:
    return {
        **key.fields,
        "key": key.resource_id,
        "interval_start": IsoDatetime.of(interval_start),
        "interval_end": IsoDatetime.of(interval_end),
    }


def render_workflow_id(spec: WorkflowSpec, key: Key, interval_start: datetime, interval_end: datetime) -> str:
    """The workflow id the spec expects for ``key`` in ``[interval_start, interval_end)``."""
    try:
        wid = spec.id_template.format(**template_fields(key, interval_start, interval_end))
    except (KeyError, ValueError, IndexError, AttributeError) as err:
        raise ConfigurationError(
            f"workflow spec {spec.label!r}: id_template {spec.id_template!r} cannot be rendered for key "
            f"{key.resource_id!r}: {err!r}"
        ) from err
    if not wid:
        raise ConfigurationError(f"workflow spec {spec.label!r}: id_template renders an empty id.")
    return _check_query_safe(wid, "rendered workflow id", f"workflow spec {spec.label!r}")


def render_args(spec: WorkflowSpec, key: Key, interval_start: datetime, interval_end: datetime) -> list:
    """The replacement workflow's arguments: ``spec.args`` rendered, or one default object."""
    values = template_fields(key, interval_start, interval_end)
    if spec.args is None:
        return [
            {
                **key.fields,
                "resource_id": key.resource_id,
                "interval_start": values["interval_start"].isoformat(),
                "interval_end": values["interval_end"].isoformat(),
            }
        ]

    def render(node: Any) -> Any:
        if isinstance(node, str):
            try:
                return node.format(**values)
            except (KeyError, ValueError, IndexError, AttributeError) as err:
                raise ConfigurationError(
                    f"workflow spec {spec.label!r}: argument template {node!r} cannot be rendered: {err!r}"
                ) from err
        if isinstance(node, list):
            return [render(n) for n in node]
        if isinstance(node, Mapping):
            return {k: render(v) for k, v in node.items()}
        return node

    return render(spec.args)


def replacement_workflow_id(expected_id: str, attempt: int) -> str:
    return f"{expected_id}{REPLACEMENT_MARK}{attempt}"


def replacement_attempt(expected_id: str, workflow_id: str) -> int | None:
    """The attempt number if ``workflow_id`` is a replacement of ``expected_id``, else ``None``."""
    prefix = expected_id + REPLACEMENT_MARK
    if workflow_id.startswith(prefix) and workflow_id[len(prefix) :].isdigit():
        return int(workflow_id[len(prefix) :])
    return None


def visibility_queries(spec: WorkflowSpec, expected_ids: Sequence[str]) -> list[str]:
    """Visibility queries that together list every execution that can belong to ``expected_ids``.

    Exact matching lists the expected ids and all their possible replacement ids with ``IN``;
    prefix matching needs one ``STARTS_WITH`` per key. Batched to keep each query short.
    """
    base = f"WorkflowType = {quote_query_value(spec.workflow_type)}"
    if spec.extra_query:
        base += f" AND ({spec.extra_query})"
    queries = []
    if spec.match == "exact":
        ids = [
            i
            for wid in expected_ids
            for i in (wid, *(replacement_workflow_id(wid, n) for n in range(1, spec.max_attempts + 1)))
        ]
        for batch in _batches(ids, QUERY_BATCH_IDS):
            queries.append(f"{base} AND WorkflowId IN ({', '.join(quote_query_value(i) for i in batch)})")
    else:
        for batch in _batches(list(expected_ids), QUERY_BATCH_IDS // 4):
            clauses = " OR ".join(f"WorkflowId STARTS_WITH {quote_query_value(i)}" for i in batch)
            queries.append(f"{base} AND ({clauses})")
    return queries


def _batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- classification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """One run as visibility lists it. ``status`` uses visibility's names (``TimedOut``)."""

    workflow_id: str
    run_id: str
    status: str
    start_time: datetime
    close_time: datetime | None = None
    workflow_type: str = ""


@dataclass(frozen=True)
class HistoryPoints:
    """The two points seed 000 looks for in a run's history, plus how the run closed.

    ``start_time`` is the ``WorkflowExecutionStarted`` event; ``close_status`` the visibility name
    of the closing event (``None`` while the run is open); the success point is the close time of
    a ``WorkflowExecutionCompleted`` event.
    """

    start_time: datetime | None
    close_status: str | None = None
    close_time: datetime | None = None

    @property
    def success_time(self) -> datetime | None:
        return self.close_time if self.close_status == COMPLETED_STATUS else None


def assign_executions(
    expected: Mapping[str, str], executions: Iterable[Execution], match: str = "exact"
) -> dict[str, list[Execution]]:
    """Group executions by the key (resource id) they belong to; ``expected`` maps key → id.

    With prefix matching, an execution goes to the key with the longest matching id, so that keys
    ``acme`` and ``acme-eu`` do not steal each other's executions.
    """
    by_id = {wid: key for key, wid in expected.items()}
    result: dict[str, list[Execution]] = {key: [] for key in expected}
    seen: set[tuple[str, str]] = set()
    by_length = sorted(by_id, key=len, reverse=True)
    for ex in executions:
        if (ex.workflow_id, ex.run_id) in seen:
            continue
        seen.add((ex.workflow_id, ex.run_id))
        owner = by_id.get(ex.workflow_id)
        if owner is None:
            for wid in by_length:
                if (match == "prefix" and ex.workflow_id.startswith(wid)) or (
                    replacement_attempt(wid, ex.workflow_id) is not None
                ):
                    owner = by_id[wid]
                    break
        if owner is not None:
            result[owner].append(ex)
    return result


class _Run(NamedTuple):
    start: datetime
    ex: Execution
    status: str
    close: datetime | None


@dataclass
class KeyReport:
    """What was found for one key in one interval, and what to do about it."""

    resource_id: str
    expected_workflow_id: str
    classification: str
    reason: str
    previous_workflow_id: str = ""
    previous_run_id: str = ""
    previous_start_time: str | None = None
    executions: list[dict] = field(default_factory=list)
    attempt: int = 0
    replacement_workflow_id: str | None = None
    exhausted: bool = False

    @property
    def is_gap(self) -> bool:
        return self.classification in GAP_CLASSES

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyReport:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def classify_key(
    resource_id: str,
    expected_id: str,
    executions: Sequence[Execution],
    points: Mapping[tuple[str, str], HistoryPoints],
    *,
    now: datetime,
    max_running: timedelta | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> KeyReport:
    """Classify one key from its executions and their history points.

    A success point anywhere means completed. Otherwise an open run means running (or running too
    long past ``max_running``). Otherwise the latest closed run's ending decides (failed, timed out,
    terminated, canceled), and no run at all is missing. History wins over visibility, which can
    lag behind. A gap gets the next replacement id, unless ``max_attempts`` replacements exist.
    """
    runs = []
    for ex in executions:
        pts = points.get((ex.workflow_id, ex.run_id))
        # History is written before visibility is indexed: once it has a close event, it wins.
        runs.append(
            _Run(
                start=(pts.start_time if pts else None) or ex.start_time,
                ex=ex,
                status=pts.close_status if pts and pts.close_status else ex.status,
                close=(pts.close_time if pts else None) or ex.close_time,
            )
        )
    runs.sort(key=lambda r: (r.start, r.ex.workflow_id, r.ex.run_id))
    report = KeyReport(
        resource_id=resource_id,
        expected_workflow_id=expected_id,
        classification=MISSING,
        reason=f"no execution of {expected_id} found",
        executions=[
            {
                "workflow_id": r.ex.workflow_id,
                "run_id": r.ex.run_id,
                "status": r.status,
                "start_time": _iso(r.start),
                "close_time": _iso(r.close),
            }
            for r in runs
        ],
    )
    succeeded = [r for r in runs if r.status == COMPLETED_STATUS]
    running = [r for r in runs if r.status == RUNNING]
    closed = [r for r in runs if r.status in FAILURE_STATUSES]
    last = (succeeded or running or closed or [None])[-1]
    if last is not None:
        report.previous_workflow_id = last.ex.workflow_id
        report.previous_run_id = last.ex.run_id
        report.previous_start_time = _iso(last.start)
    if succeeded:
        report.classification = COMPLETED
        report.reason = f"{last.ex.workflow_id} completed at {_iso(last.close)}"
        return report
    if running:
        age = now - last.start
        if max_running is not None and age > max_running:
            report.classification = RUNNING_TOO_LONG
            report.reason = (
                f"{last.ex.workflow_id} has been running for {_age(age)} (limit {_age(max_running)})"
            )
        else:
            report.classification = RUNNING_CLASS
            report.reason = f"{last.ex.workflow_id} running since {_iso(last.start)}"
        return report
    if closed:
        report.classification = _CLASS_OF_STATUS[last.status]
        report.reason = (
            f"last execution {last.ex.workflow_id} ended {last.status} at {_iso(last.close)} with no "
            f"success point in its history ({len(runs)} execution(s) in total)"
        )
    attempts = [replacement_attempt(expected_id, r.ex.workflow_id) or 0 for r in runs]
    report.attempt = max(attempts, default=0) + 1
    if report.attempt > max_attempts:
        report.exhausted = True
        report.reason += f"; {max_attempts} replacement(s) already tried, none started"
    else:
        report.replacement_workflow_id = replacement_workflow_id(expected_id, report.attempt)
    return report


def count_classes(reports: Iterable[KeyReport]) -> dict[str, int]:
    """Keys per class, every class present (zeros included) in report order."""
    counts = dict.fromkeys(CLASSES, 0)
    for r in reports:
        counts[r.classification] += 1
    return counts


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


# -- the backfill_requests store ---------------------------------------------------------------

BACKFILL_REQUEST_COLUMNS = (
    "request_id",
    "namespace",
    "workflow_type",
    "spec_name",
    "resource_id",
    "interval_start",
    "interval_end",
    "expected_workflow_id",
    "previous_status",
    "previous_workflow_id",
    "previous_run_id",
    "reason",
    "attempt",
    "replacement_workflow_id",
    "replacement_run_id",
    "dag_id",
    "dag_run_id",
    "created_at",
)


def backfill_requests_ddl(table: str = "backfill_requests") -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the backfill requests (seed 000's ``Day2IssueForBackfill``).

    Writers read before they insert, so a plain ``SELECT count()`` sees no duplicates;
    ReplacingMergeTree on the deterministic ``request_id`` also folds a racing duplicate at merge.
    """
    return f"""CREATE TABLE IF NOT EXISTS {quote_identifier(table)}
(
    `request_id` String,
    `namespace` LowCardinality(String),
    `workflow_type` LowCardinality(String),
    `spec_name` LowCardinality(String),
    `resource_id` String,
    `interval_start` DateTime64(3, 'UTC'),
    `interval_end` DateTime64(3, 'UTC'),
    `expected_workflow_id` String,
    `previous_status` LowCardinality(String),
    `previous_workflow_id` String,
    `previous_run_id` String,
    `reason` String,
    `attempt` UInt16,
    `replacement_workflow_id` String,
    `replacement_run_id` String,
    `dag_id` String,
    `dag_run_id` String,
    `created_at` DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY request_id"""


def request_id(namespace: str, replacement_id: str) -> str:
    """Deterministic request key: one request per replacement workflow in a namespace."""
    return hashlib.sha256(f"{namespace}\x00{replacement_id}".encode()).hexdigest()[:32]
