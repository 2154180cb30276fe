"""A trigger's conf refused in words (params/refusals.py) and the api-server middleware that answers
with them (plugins/trigger_checks.py), before a run exists.

The middleware runs here around a stand-in for Airflow's app that records what it was handed: the
real api-server is in tests/browser/test_trigger_forms.py. No database, no Airflow process.
"""

from __future__ import annotations

import json

import pytest
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import ParamValidationError
from starlette.responses import JSONResponse
from starlette.testclient import TestClient

from airflow_backfill_provider.params import wonderware_backfill as wwb
from airflow_backfill_provider.params.refusals import DAG_PARAMS, refusals
from airflow_backfill_provider.plugins.trigger_checks import TriggerChecksPlugin, TriggerConfCheck

WW = "wonderware_backfill"
MW = "missing_workflow_backfill"
# jsonschema's own refusal: the failed keyword, the schema dumped, the value.
DUMP = ("Failed validating", "On instance", "{'", "does not match '^")


def words(dag_id: str, conf: dict, **kwargs) -> str:
    found = refusals(dag_id, conf, **kwargs)
    text = "\n".join(found)
    assert not any(d in text for d in DUMP), f"a schema dump, not words:\n{text}"
    return text


def test_every_dags_defaults_pass():
    """The conf the Trigger form sends untouched is never refused."""
    for dag_id, factory in DAG_PARAMS.items():
        assert refusals(dag_id, {k: p.value for k, p in factory().items()}) == [], dag_id


def test_a_chunk_window_of_no_length_is_refused_naming_the_rule_and_an_example():
    for value in ("P", "PT", "PT0S", "P0D", "6 hours", "P1Y"):
        text = words(WW, {"chunk_window": value})
        assert text == (
            f'Chunk window [chunk_window]: "{value}" is not an ISO 8601 duration with a length, in weeks, '
            "days, hours, minutes or seconds, e.g. PT6H (6 hours), PT30M or P1D."
        )


@pytest.mark.parametrize("value", [0, 5000])
def test_an_out_of_range_number_is_refused_with_its_range_and_why(value):
    assert words(WW, {"tag_group_size": value}) == (
        f"Tags per chunk [tag_group_size]: {value} is out of range; it must be from 1 to 2,000, as SQL "
        "Server takes at most 2,100 parameters in one query."
    )
    assert "it must be from 1,000 to 1,000,000" in words(WW, {"batch_size": 999})
    assert words(MW, {"max_starts": -1}) == (
        "Most replacements to start [max_starts]: -1 is out of range; it must be at least 0."
    )


@pytest.mark.parametrize(
    "dag_id, start, end",
    [(WW, "range_start", "range_end"), (MW, "interval_start", "interval_end")],
)
def test_a_reversed_or_empty_window_is_refused(dag_id, start, end):
    first, last = DAG_PARAMS[dag_id]()[start].schema["title"], DAG_PARAMS[dag_id]()[end].schema["title"]
    for later, earlier in [
        ("2025-01-02T00:00:00Z", "2025-01-01T00:00:00Z"),
        ("2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"),  # no time at all
        ("2025-01-01T02:00:00+02:00", "2025-01-01T00:00:00Z"),  # the same instant
    ]:
        assert words(dag_id, {start: later, end: earlier}) == (
            f'{last} [{end}] "{earlier}" is not after {first} [{start}] "{later}": the window runs '
            "from its start up to its end, end excluded. Swap them, or set a later end."
        )
    assert words(dag_id, {start: "2025-01-01T00:00:00Z", end: None}) == (
        f"{first} [{start}] and {last} [{end}] go together: set {last} [{end}] too, or leave both empty."
    )
    assert refusals(dag_id, {start: "2025-01-01T00:00:00Z", end: "2025-01-01T00:00:01Z"}) == []
    assert refusals(dag_id, {start: None, end: None}) == []
    # an end that is no instant is said once, about that end
    assert words(dag_id, {start: "2025-01-02T00:00:00Z", end: "2025-01-01"}).count("\n") == 0


def test_a_window_in_a_backfill_is_refused():
    conf = {"range_start": "2025-01-01T00:00:00Z", "range_end": "2025-01-02T00:00:00Z"}
    assert refusals(WW, conf) == []
    assert words(WW, conf, backfill=True).startswith(
        "Window start [range_start] and Window end (exclusive) [range_end] are for single manual runs only"
    )
    assert refusals(WW, {"range_start": None, "range_end": None}, backfill=True) == []


def test_list_values_are_refused_in_words():
    assert words(WW, {"tag_types": ["analogue"]}).startswith(
        'Tag types [tag_types]: "analogue" is not one of Analog (TagType 1), Discrete (TagType 2)'
    )
    assert words(WW, {"tag_types": []}).startswith(
        "Tag types [tag_types] needs at least one value: choose from"
    )
    assert words(WW, {"tag_include": ["Boiler*", ""]}) == (
        "Include tags (glob patterns) [tag_include], line 2 is empty text: remove empty lines."
    )
    assert words(WW, {"tags": ["A", "B", "A"]}) == 'Exact tag names [tags] names "A" more than once.'
    assert words("k8s_job_backfill", {"customers": [7]}) == (
        "Only these customers [customers], line 1 must be text, not 7."
    )


def test_types_and_empty_values_are_refused_in_words():
    assert (
        words(WW, {"tag_group_size": "50"})
        == 'Tags per chunk [tag_group_size] must be a whole number, not "50".'
    )
    assert (
        words(WW, {"chunk_window": None}) == "Chunk window [chunk_window] cannot be empty: it needs a value."
    )
    assert words(WW, {"dry_run": "yes"}).endswith('must be true or false, not "yes".')
    assert words(MW, {"spec_file": ""}) == "Spec file [spec_file] is empty text: leave it unset instead."


def test_unknown_dags_keys_and_confs_are_left_to_airflow():
    assert refusals("someone_elses_dag", {"chunk_window": "P"}) == []
    assert refusals(WW, {"not_a_param": "P"}) == []
    assert refusals(WW, None) == [] and refusals(WW, ["chunk_window"]) == []


SAMPLES = {
    "chunk_window": ["PT6H", "P", "PT0S", "P1Y", "6h", 6, None],
    "tag_group_size": [1, 2000, 0, 2001, "50", 1.5, None],
    "batch_size": [1000, 999, 1_000_001],
    "range_start": ["2025-01-01T00:00:00Z", "2025-01-01", "yesterday", None, 5],
    "tags": [[], None, ["A"], [""], ["A", "A"], "A"],
    "tag_types": [["analog"], [], ["analogue"], None],
    "dry_run": [True, "true", None],
}


@pytest.mark.parametrize("name, value", [(n, v) for n, vs in SAMPLES.items() for v in vs])
def test_words_are_given_exactly_where_airflow_refuses(name, value):
    """Airflow's own check of one value (what the api-server and the CLI run) and the words agree."""
    try:
        ParamsDict(wwb.params())[name] = value
    except ParamValidationError:
        airflow_refuses = True
    else:
        airflow_refuses = False
    conf = {name: value}
    if name == "range_start":  # a window needs its end: one that comes after any start, or none
        conf["range_end"] = None if value is None else "2100-01-01T00:00:00Z"
    assert bool(refusals(WW, conf)) is airflow_refuses, (name, value)


# -- the api-server middleware -------------------------------------------------------------------


def airflow_stand_in(seen: list):
    """Stands in for Airflow's app: records the body it was handed and answers 201."""

    async def app(scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        seen.append((scope["method"], scope["path"], body))
        await JSONResponse({"created": True}, status_code=201)(scope, receive, send)

    return app


@pytest.fixture
def api():
    seen: list = []
    return TestClient(TriggerConfCheck(airflow_stand_in(seen))), seen


def test_a_bad_trigger_is_answered_in_words_and_never_reaches_airflow(api):
    client, seen = api
    answer = client.post(
        "/api/v2/dags/wonderware_backfill/dagRuns",
        json={"logical_date": None, "conf": {"chunk_window": "P", "tag_group_size": 5000}},
    )
    assert answer.status_code == 400
    assert answer.json()["detail"].splitlines() == [
        "No run was created. Fix these Params and try again:",
        *refusals(WW, {"chunk_window": "P", "tag_group_size": 5000}),
    ]
    assert seen == []


def test_a_good_trigger_reaches_airflow_with_its_body_unchanged(api):
    client, seen = api
    body = json.dumps({"logical_date": None, "conf": {"chunk_window": "PT1H", "tags": None}}).encode()
    answer = client.post("/api/v2/dags/wonderware_backfill/dagRuns", content=body)
    assert answer.status_code == 201
    assert seen == [("POST", "/api/v2/dags/wonderware_backfill/dagRuns", body)]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/v2/dags/someone_elses_dag/dagRuns", {"conf": {"chunk_window": "P"}}),
        ("POST", "/api/v2/dags/wonderware_backfill/dagRuns/list", {"conf": {"chunk_window": "P"}}),
        ("PATCH", "/api/v2/dags/wonderware_backfill", {"conf": {"chunk_window": "P"}}),
        ("POST", "/api/v2/dags/wonderware_backfill/dagRuns", "not an object"),
    ],
)
def test_other_requests_pass_untouched(api, method, path, body):
    client, seen = api
    assert client.request(method, path, json=body).status_code == 201
    assert len(seen) == 1


def test_a_backfill_with_a_window_is_refused(api):
    client, seen = api
    conf = {"range_start": "2025-01-01T00:00:00Z", "range_end": "2025-01-02T00:00:00Z"}
    for path in ("/api/v2/backfills", "/api/v2/backfills/dry_run"):
        answer = client.post(path, json={"dag_id": WW, "dag_run_conf": conf})
        assert answer.status_code == 400
        assert answer.json()["detail"].startswith(
            "No backfill was created. Fix these Params and try again:\n"
        )
    assert client.post("/api/v2/backfills", json={"dag_id": WW, "dag_run_conf": {}}).status_code == 201
    assert len(seen) == 1


def test_no_check_when_a_conf_does_not_override_params(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS", "False")
    client = TestClient(TriggerConfCheck(airflow_stand_in([])))
    answer = client.post("/api/v2/dags/wonderware_backfill/dagRuns", json={"conf": {"chunk_window": "P"}})
    assert answer.status_code == 201


def test_the_plugin_adds_the_middleware_to_the_api_server():
    from importlib.metadata import entry_points

    (middleware,) = TriggerChecksPlugin.fastapi_root_middlewares
    assert middleware["middleware"] is TriggerConfCheck
    (ep,) = [e for e in entry_points(group="airflow.plugins") if e.name == "backfill_trigger_checks"]
    assert ep.value == "airflow_backfill_provider.plugins.trigger_checks:TriggerChecksPlugin"
