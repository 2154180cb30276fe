"""The Params of each DAG: the JSON schemas behind Airflow's Trigger form and ``--conf`` validation.

One module per DAG, beside ``settings/`` and ``tasks/``. Every Param has a human ``title``, a
description with an example, a ``section`` of the form, and whatever the schema can check before a
run exists: Airflow validates a run's conf against these schemas when it is triggered (the REST API
and the CLI refuse a bad value, naming the Param), and the Trigger form renders them (date-time
pickers, drop-downs, multi-selects, number bounds). The description is ``description_md``, part of
the schema, so Airflow's validation error quotes the rule and its example along with the bad value.

What Airflow 3.3.2's form does with a schema, read from its source (``airflow/ui``): it checks no
``pattern``; ``format: duration`` is checked with dayjs, which takes ``P`` (no length) and ``P1Y``;
a number field clamps a typed value into a top-level ``minimum``/``maximum`` on blur without a word;
a field whose ``type`` has no ``"null"`` is marked required. So number bounds sit under ``allOf``
(:func:`number_range`), optional lists are nullable (:func:`optional_list`), and what the form
cannot check is refused at trigger time in words by :mod:`.refusals`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

# An RFC 3339 instant, what ``format: date-time`` means. The Trigger form's date-time picker sends
# one; the pattern checks it for every conf too, because jsonschema checks the ``date-time`` format
# only where the optional rfc3339-validator package is installed.
ISO_INSTANT = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
# An ISO 8601 duration in weeks, days, hours, minutes and seconds ("PT6H", "P1D"), as the form's
# duration field writes it and utils.parse_duration reads it, with a length: some amount not zero
# (the form's own check takes "P" and "PT0S" as durations of zero, and planning refuses those).
DURATION = r"^P(?=.*[1-9])(?!T?$)([0-9]+W)?([0-9]+D)?(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+S)?)?$"
# What a value of each format must be, in words: the refusals name the rule with them.
FORMAT_RULES = {
    "date-time": "an instant with its offset, e.g. 2025-01-01T00:00:00Z (UTC) or 2025-01-01T02:00:00+02:00",
    "duration": "an ISO 8601 duration with a length, in weeks, days, hours, minutes or seconds, e.g. "
    "PT6H (6 hours), PT30M or P1D",
}


def instant_param(title: str, description_md: str, *, section: str) -> Param:
    """An optional instant: the form's date-time picker, and an RFC 3339 check for every conf."""
    return Param(
        None,
        type=["null", "string"],
        format="date-time",
        pattern=ISO_INSTANT,
        title=title,
        description_md=description_md,
        section=section,
    )


def number_range(low: int, high: int | None = None, *, why: str = "") -> list[dict[str, Any]]:
    """The bounds of a number Param, as its ``allOf``: Airflow checks them, the form does not clamp.

    Airflow 3.3's form hands a top-level ``minimum``/``maximum`` to its number input, which moves a
    typed 0 or 5000 into range when the field loses focus, silently. Under ``allOf`` the bounds are
    still checked on every conf; their ``description`` says the range and why, in words, and is what
    Airflow's own refusal quotes (the CLI's, which no plugin sees).
    """
    rule: dict[str, Any] = {"minimum": low}
    words = f"at least {low:,}"
    if high is not None:
        rule["maximum"] = high
        words = f"from {low:,} to {high:,}"
    rule["description"] = f"{words}, {why}" if why else words
    return [rule]


def optional_list(title: str, description_md: str, *, section: str, **schema: Any) -> Param:
    """A list Param that may stay empty: ``[]`` by default, and ``null`` (a field the form cleared)
    accepted, so the form marks it neither required nor invalid when empty."""
    return Param(
        [],
        type=["null", "array"],
        title=title,
        description_md=description_md,
        section=section,
        **schema,
    )
