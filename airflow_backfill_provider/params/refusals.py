"""A trigger's conf refused in words: each bad value named by its form title, with the rule.

Airflow 3.3 checks each Param's schema on its own when a run is triggered, and answers with
jsonschema's text: the failed rule, the schema that holds it dumped whole, and the value. The
Trigger dialog shows that text as it is. :func:`refusals` makes the same checks and says what is
wrong the way a person reads it: the Param's title and name, the value, the rule and an example.
It also checks what no single Param's schema can: an explicit window needs both ends and its end
after its start, and is for manual runs only (each run of a backfill loads its own interval).

The api-server plugin :mod:`airflow_backfill_provider.plugins.trigger_checks` answers a trigger or
a backfill of this provider's DAGs with it before Airflow does. No Airflow import here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import validator_for

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.params import FORMAT_RULES
from airflow_backfill_provider.params import k8s_job_backfill as k8s
from airflow_backfill_provider.params import missing_workflow_backfill as mwb
from airflow_backfill_provider.params import wonderware_backfill as wwb
from airflow_backfill_provider.utils import to_utc

# The Params of each DAG of this provider, by DAG id.
DAG_PARAMS: dict[str, Callable[[], dict[str, Any]]] = {
    "wonderware_backfill": wwb.params,
    "missing_workflow_backfill": mwb.params,
    "k8s_job_backfill": k8s.params,
}
# The (start, end) Params of each DAG's explicit window.
WINDOWS: dict[str, tuple[str, str]] = {
    "wonderware_backfill": wwb.WINDOW_PARAMS,
    "missing_workflow_backfill": mwb.WINDOW_PARAMS,
}
_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a JSON object",
    "null": "empty",
}


def refusals(dag_id: str, conf: Any, *, backfill: bool = False) -> list[str]:
    """What is wrong with ``conf`` for a run of ``dag_id``, one sentence per problem.

    Empty when nothing is wrong, or when ``dag_id`` is not one of this provider's DAGs. A key that
    is no Param is left to Airflow. ``backfill``: the conf of a backfill's runs.
    """
    factory = DAG_PARAMS.get(dag_id)
    if factory is None or not isinstance(conf, Mapping):
        return []
    schemas = {name: param.schema for name, param in factory().items()}
    problems = {}
    for name, value in conf.items():
        error = _first_error(schemas[name], value) if name in schemas else None
        if error is not None:
            problems[name] = _words(name, schemas[name], value, error)
    window = WINDOWS.get(dag_id)
    if window and not problems.keys() & set(window):  # each end is readable
        return [*problems.values(), *_window_problems(schemas, conf, window, backfill=backfill)]
    return list(problems.values())


def label(name: str, schema: Mapping[str, Any]) -> str:
    """A Param as the form shows it, and as a conf names it: ``Chunk window [chunk_window]``."""
    title = schema.get("title")
    return f"{title} [{name}]" if title else name


def _first_error(schema: Mapping[str, Any], value: Any) -> ValidationError | None:
    """The error Airflow reports for ``value`` (its validator, format checker and choice)."""
    validator = validator_for(schema)(schema, format_checker=FormatChecker())
    return best_match(validator.iter_errors(value))


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _words(name: str, schema: Mapping[str, Any], value: Any, error: ValidationError) -> str:
    """One refusal in words, from the keyword that failed."""
    who = label(name, schema)
    keyword, bad = error.validator, _show(error.instance)
    if error.path and keyword != "enum":  # an item of a list: the form's text field has one per line
        who = f"{who}, line {error.path[0] + 1}"
    if keyword == "type":
        if error.instance is None:
            return f"{who} cannot be empty: it needs a value."
        expected = error.validator_value
        kinds = [_TYPE_WORDS.get(t, t) for t in (expected if isinstance(expected, list) else [expected])]
        return f"{who} must be {' or '.join(kinds)}, not {bad}."
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        rule = error.schema.get("description") or error.message
        return f"{who}: {bad} is out of range; it must be {rule}."
    if keyword in ("format", "pattern") and FORMAT_RULES.get(schema.get("format", "")):
        return f"{who}: {bad} is not {FORMAT_RULES[schema['format']]}."
    if keyword == "minLength":
        return f"{who} is empty text: {'remove empty lines' if error.path else 'leave it unset instead'}."
    if keyword == "enum":
        return f"{who}: {bad} is not one of {_choices(schema)}."
    if keyword == "minItems":
        least, choices = error.validator_value, _choices(schema)
        values = "one value" if least == 1 else f"{least} values"
        return f"{who} needs at least {values}{': choose from ' + choices if choices else ''}."
    if keyword == "uniqueItems":
        return f"{who} names {', '.join(_show(v) for v in _repeated(value))} more than once."
    return f"{who}: {bad} is refused: {error.message}."


def _choices(schema: Mapping[str, Any]) -> str:
    """The values a list Param takes, as the form shows them."""
    allowed = (schema.get("items") or {}).get("enum") or []
    shown = schema.get("values_display") or {}
    return ", ".join(str(shown.get(v, v)) for v in allowed)


def _repeated(values: Sequence[Any]) -> list[Any]:
    seen: list[Any] = []
    repeated: list[Any] = []
    for v in values:
        if v in seen and v not in repeated:
            repeated.append(v)
        seen.append(v)
    return repeated


def _window_problems(
    schemas: Mapping[str, Mapping[str, Any]],
    conf: Mapping[str, Any],
    window: tuple[str, str],
    *,
    backfill: bool,
) -> list[str]:
    """The explicit window's own rules, once each of its ends passed its schema."""
    start_name, end_name = window
    start, end = conf.get(start_name), conf.get(end_name)
    first, last = label(start_name, schemas[start_name]), label(end_name, schemas[end_name])
    if backfill and (start or end):
        given = [label(n, schemas[n]) for n in window if conf.get(n)]
        one = len(given) == 1
        return [
            f"{' and '.join(given)} {'is' if one else 'are'} for single manual runs only: each run of a "
            "backfill loads its own interval, and one window in every run would load that window again "
            f"and again. Leave {'it' if one else 'them'} empty for a backfill; to load one window, trigger "
            "a single run."
        ]
    if bool(start) != bool(end):
        missing = last if start else first
        return [f"{first} and {last} go together: set {missing} too, or leave both empty."]
    if start and end and not _before(start, end):
        return [
            f"{last} {_show(end)} is not after {first} {_show(start)}: the window runs from its start up "
            "to its end, end excluded. Swap them, or set a later end."
        ]
    return []


def _before(start: str, end: str) -> bool:
    """Whether ``start`` is before ``end``, two values that passed their schemas (one Python cannot
    read is left to the run, which says so)."""
    try:
        return to_utc(start) < to_utc(end)
    except ConfigurationError:
        return True
