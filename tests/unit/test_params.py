"""The DAGs' Params: what the Trigger form renders, and what Airflow accepts or refuses in a conf.

Each value is validated the way Airflow validates a trigger's conf (``Param.resolve``: jsonschema
with a format checker), plus ``jsonschema`` straight on each schema, so a check that only works in
one of them is caught. No DAG run, no database.
"""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from airflow_backfill_provider.historian.schema import TAG_TYPES
from airflow_backfill_provider.historian.selection import select_from_types
from airflow_backfill_provider.params import k8s_job_backfill as k8s
from airflow_backfill_provider.params import missing_workflow_backfill as mwb
from airflow_backfill_provider.params import wonderware_backfill as wwb
from airflow_backfill_provider.utils import parse_duration, to_utc

DAG_PARAMS = {"wonderware_backfill": wwb.params, "missing_workflow_backfill": mwb.params}
# What each DAG's existing tests, docs and the browser tests pass by name: never renamed.
NAMES = {
    "wonderware_backfill": {
        "range_start", "range_end", "tag_types", "tags", "tag_include", "tag_exclude", "exclude_system_tags",
        "chunk_window", "tag_group_size", "batch_size", "dry_run", "allow_empty",
    },
    "missing_workflow_backfill": {
        "spec", "spec_file", "dry_run", "max_starts", "interval_start", "interval_end", "allow_beyond_retention",
    },
}  # fmt: skip


def accepts(dag: str, name: str, value) -> bool:
    param = DAG_PARAMS[dag]()[name]
    try:
        param.resolve(value)
    except ParamValidationError:
        airflow_ok = False
    else:
        airflow_ok = True
    schema_ok = jsonschema.Draft7Validator(param.schema).is_valid(value)
    assert airflow_ok == schema_ok, f"Airflow and jsonschema disagree on {name}={value!r}"
    return airflow_ok


@pytest.mark.parametrize("dag", DAG_PARAMS)
def test_param_names_are_kept(dag):
    assert set(DAG_PARAMS[dag]()) == NAMES[dag]


@pytest.mark.parametrize("dag, name", [(d, n) for d in DAG_PARAMS for n in sorted(NAMES[d])])
def test_every_param_has_a_title_a_section_and_a_description_with_an_example(dag, name):
    schema = DAG_PARAMS[dag]()[name].schema
    assert schema["title"] and schema["title"] != name and "_" not in schema["title"]
    assert schema["section"]
    assert "e.g." in schema["description_md"]


@pytest.mark.parametrize("dag", DAG_PARAMS)
def test_defaults_are_valid_and_params_are_fresh_objects(dag):
    one, two = DAG_PARAMS[dag](), DAG_PARAMS[dag]()
    assert all(one[k] is not two[k] for k in one)
    ParamsDict(one).validate()


@pytest.mark.parametrize(
    "value, ok",
    [
        # ISO 8601, as the form's duration field writes it
        ("PT6H", True), ("PT30M", True), ("P1D", True), ("P1DT12H", True), ("P2W", True), ("PT90S", True),
        ("P", False), ("PT", False), ("P1Y", False), ("PT6", False),
        # a duration of no length, which planning refuses: refused with the conf, not in the run
        ("PT0S", False), ("P0D", False), ("P0W0DT0H", False), ("PT0H30M", True),
        # the short spelling of the environment settings is not a Param value
        ("6h", False), ("6 hours", False), ("0h", False), ("6", False), ("-1h", False),
        ("", False), (6, False), (None, False),
    ],
)  # fmt: skip
def test_chunk_window(value, ok):
    assert accepts("wonderware_backfill", "chunk_window", value) is ok
    if ok:  # what the form accepts, planning reads
        parse_duration(value, "chunk window")


@pytest.mark.parametrize(
    "value, ok",
    [
        (1, True),
        (50, True),
        (2000, True),
        (2001, False),
        (5000, False),
        (0, False),
        ("50", False),
        (None, False),
    ],
)
def test_tag_group_size_is_at_most_2000(value, ok):
    assert accepts("wonderware_backfill", "tag_group_size", value) is ok


@pytest.mark.parametrize(
    "value, ok", [(1000, True), (50_000, True), (1_000_000, True), (999, False), (1_000_001, False)]
)
def test_batch_size_bounds(value, ok):
    assert accepts("wonderware_backfill", "batch_size", value) is ok


INSTANTS = [
    ("2025-01-01T00:00:00Z", True),
    ("2025-01-01T00:00:00.000Z", True),  # what the Trigger form's date-time picker sends
    ("2025-01-01T02:00:00+02:00", True),
    ("2025-01-01t00:00:00z", False),  # RFC 3339 allows it, Python's fromisoformat does not
    (None, True),  # not set
    ("2025-01-01", False),  # a date: say which instant
    ("2025-01-01T00:00:00", False),  # no offset: ambiguous
    ("2025-01-01 00:00:00Z", False),
    ("yesterday", False),
    ("01/01/2025", False),
    ("2025-13-01T00:00:00Z", False),
    ("2025-01-32T00:00:00Z", False),
    ("2025-01-01T24:00:00Z", False),
    ("", False),
]


@pytest.mark.parametrize(
    "dag, name",
    [
        ("wonderware_backfill", "range_start"),
        ("wonderware_backfill", "range_end"),
        ("missing_workflow_backfill", "interval_start"),
        ("missing_workflow_backfill", "interval_end"),
    ],
)
@pytest.mark.parametrize("value, ok", INSTANTS)
def test_instants_use_the_date_time_input_and_are_checked(dag, name, value, ok):
    schema = DAG_PARAMS[dag]()[name].schema
    # the form renders a date-time picker for a (nullable) string of format date-time
    assert (schema["type"], schema["format"]) == (["null", "string"], "date-time")
    assert accepts(dag, name, value) is ok
    if ok and value is not None:  # what the form accepts, the tasks read
        to_utc(value, name)


def test_tag_types_is_a_multi_select_of_the_six_types():
    schema = wwb.params()["tag_types"].schema
    # the form's multi-select: an array with `examples`; `items.enum` is what is checked
    assert schema["type"] == "array" and schema["examples"] == list(TAG_TYPES)
    assert schema["items"]["enum"] == ["analog", "discrete", "string", "complex", "event", "summary"]
    assert set(schema["values_display"]) == set(TAG_TYPES)
    assert "null" not in str(schema["values_display"].values()).lower()
    assert accepts("wonderware_backfill", "tag_types", ["summary"])
    assert accepts("wonderware_backfill", "tag_types", list(TAG_TYPES))
    for bad in (["analogue"], [], ["analog", "analog"], "analog", [1]):
        assert not accepts("wonderware_backfill", "tag_types", bad), bad


def test_tag_patterns_are_lists_of_non_empty_strings():
    for name in ("tag_include", "tag_exclude"):
        assert accepts("wonderware_backfill", name, ["Boiler*", "100%_Done [[]Line-1]"])
        assert not accepts("wonderware_backfill", name, [""])
        assert not accepts("wonderware_backfill", name, "Boiler*")


def test_missing_workflow_values():
    assert accepts("missing_workflow_backfill", "max_starts", 0)
    assert not accepts("missing_workflow_backfill", "max_starts", -1)
    assert accepts("missing_workflow_backfill", "spec", {"workflows": []})
    assert accepts("missing_workflow_backfill", "spec", [{"workflow_type": "T"}])
    assert not accepts("missing_workflow_backfill", "spec", "not json")
    assert not accepts("missing_workflow_backfill", "spec_file", "")


def test_missing_workflow_dry_run_defaults_to_on():
    """A triggered run starts real workflows only when asked to (tasks.runs.dry_run keeps scheduled
    runs and backfills real)."""
    assert mwb.params()["dry_run"].value is True
    assert wwb.params()["dry_run"].value is False  # a manual load is what that DAG is for


def refusal(params: ParamsDict, name: str, value) -> str:
    """Airflow's message for a bad conf value, with the schema's wrapped strings joined again."""
    with pytest.raises(ParamValidationError) as err:
        copy.deepcopy(params)[name] = value
    return re.sub(r"['\"]\n\s*['\"]", "", str(err.value))


def test_a_bad_conf_is_refused_naming_the_param_the_value_and_the_rule():
    """The message Airflow returns when a trigger's conf fails (REST API 400, CLI error): the Param,
    the value, and (from the schema's description) the rule with an example."""
    params = ParamsDict(wwb.params())
    message = refusal(params, "chunk_window", "6 hours")
    assert message.startswith("Invalid input for param chunk_window: '6 hours' ")
    assert "e.g. `PT6H` (6 hours), `PT30M`, `P1D` (not `6h` or `6 hours`)" in message
    message = refusal(params, "tag_group_size", 5000)
    assert message.startswith(
        "Invalid input for param tag_group_size: 5000 is greater than the maximum of 2000"
    )
    assert "SQL Server takes at most 2,100 parameters in one query" in message
    message = refusal(params, "range_end", "2025-01-02")
    assert message.startswith("Invalid input for param range_end: '2025-01-02' does not match")
    assert "e.g. `2025-01-02T00:00:00Z`" in message


def test_chunk_window_uses_the_forms_duration_field_and_its_default_plans_like_6h():
    from airflow_backfill_provider.params.wonderware_backfill import params

    chunk_window = params()["chunk_window"]
    # format "duration" is what makes Airflow 3.3's form check the value next to the field
    assert chunk_window.schema["format"] == "duration"
    assert parse_duration(chunk_window.value, "chunk window") == parse_duration("6h")


EVERY_DAG = {**DAG_PARAMS, "k8s_job_backfill": k8s.params}


@pytest.mark.parametrize("dag", EVERY_DAG)
def test_number_params_give_the_form_no_bounds_to_clamp_to(dag):
    """Airflow 3.3's form hands a top-level minimum/maximum to its number input, which turns a typed
    0 into 1 and 5000 into 2000 on blur, without a word. The bounds sit under allOf, checked by
    Airflow on every conf (the bounds tests above), with the range and why in words."""
    for name, param in EVERY_DAG[dag]().items():
        schema = param.schema
        if schema.get("type") not in ("integer", "number"):
            continue
        clamped = {"minimum", "maximum"} & set(schema)
        assert not clamped, f"{dag}.{name}: the form clamps into its top-level {sorted(clamped)}"
        (bounds,) = schema["allOf"]
        assert {"minimum", "description"} <= set(bounds), f"{dag}.{name}: {bounds}"


@pytest.mark.parametrize("dag", EVERY_DAG)
def test_params_that_may_stay_empty_take_null(dag):
    """The form marks a field required unless its type includes "null", and sends null for a list
    field that was emptied: a Param that may stay empty (default None or []) takes null."""
    for name, param in EVERY_DAG[dag]().items():
        if param.value in (None, []):
            assert "null" in param.schema["type"], f"{dag}.{name}: {param.schema['type']} (marked required)"
            assert param.resolve(None) is None


def test_emptied_lists_select_like_empty_ones():
    """What the form sends for a list emptied by hand (null) selects what [] selects."""
    by_type = {"analog": ["Boiler.Temp", "Line1.Speed"]}
    assert select_from_types(by_type, None, None).tags == select_from_types(by_type, [], []).tags
