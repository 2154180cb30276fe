"""Workflow specs: what should have run, the workflow ids it expects, and the ids of replacements.

A spec names a workflow type and a list of keys (customers, resources); its ``id_template`` gives
the id each key's execution has in an interval, and a gap's replacement runs under
``<expected id>-backfill-<attempt>``, so re-running the analysis never starts anything twice.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.utils import parse_duration
from airflow_backfill_provider.workflows.visibility import check_query_safe

REPLACEMENT_MARK = "-backfill-"
DEFAULT_MAX_ATTEMPTS = 3
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

    def candidate_ids(self, expected_id: str) -> tuple[str, ...]:
        """The expected id and every replacement id ``max_attempts`` allows."""
        return (
            expected_id,
            *(replacement_workflow_id(expected_id, n) for n in range(1, self.max_attempts + 1)),
        )


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
    check_query_safe(raw["workflow_type"], "workflow_type", where)
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
    return check_query_safe(wid, "rendered workflow id", f"workflow spec {spec.label!r}")


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


# -- replacements ------------------------------------------------------------------------------


def replacement_workflow_id(expected_id: str, attempt: int) -> str:
    """The id of the ``attempt``-th replacement of ``expected_id``."""
    return f"{expected_id}{REPLACEMENT_MARK}{attempt}"


def replacement_attempt(expected_id: str, workflow_id: str) -> int | None:
    """The attempt number if ``workflow_id`` is a replacement of ``expected_id``, else ``None``."""
    prefix = expected_id + REPLACEMENT_MARK
    if workflow_id.startswith(prefix) and workflow_id[len(prefix) :].isdigit():
        return int(workflow_id[len(prefix) :])
    return None
