"""The Params of each DAG: the JSON schemas behind Airflow's Trigger form and ``--conf`` validation.

One module per DAG, beside ``settings/`` and ``tasks/``. Every Param has a human ``title``, a
description with an example, a ``section`` of the form, and whatever the schema can check before a
run exists: Airflow validates a run's conf against these schemas when it is triggered (the REST API
and the CLI refuse a bad value, naming the Param), and the Trigger form renders them (date-time
pickers, drop-downs, multi-selects, number bounds). The description is ``description_md``, part of
the schema, so Airflow's validation error quotes the rule and its example along with the bad value.
"""

from __future__ import annotations

from airflow.sdk import Param

# An RFC 3339 instant, what ``format: date-time`` means. The Trigger form's date-time picker sends
# one; the pattern checks it for every conf too, because jsonschema checks the ``date-time`` format
# only where the optional rfc3339-validator package is installed.
ISO_INSTANT = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
# An ISO 8601 duration in weeks, days, hours, minutes and seconds ("PT6H", "P1D"), as the form's
# duration field writes it and utils.parse_duration reads it; the pattern's message names the rule.
DURATION = r"^P(?!T?$)([0-9]+W)?([0-9]+D)?(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+S)?)?$"


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
