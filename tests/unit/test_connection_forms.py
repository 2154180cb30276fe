"""The connection forms declared in get_provider_info(), and the plugin that makes Test work for
connections without a port: what the UI renders and what the api-server compares."""

from __future__ import annotations

import re

import pytest

from airflow_backfill_provider.get_provider_info import get_provider_info

FORMS = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}


def test_the_connection_types_and_their_hooks():
    assert {t: f["hook-class-name"].rsplit(".", 1)[1] for t, f in FORMS.items()} == {
        "wonderware": "WonderwareHook",
        "chdb": "EmbeddedClickHouseHook",
        "temporal": "TemporalHook",
        "airflowapi": "AirflowApiHook",
    }
    for conn_type in FORMS:
        assert "_" not in conn_type  # Test round-trips the connection through a URI scheme


def test_providers_manager_registers_the_embedded_clickhouse_type():
    from airflow.providers_manager import ProvidersManager

    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook, EmbeddedClickHouseHook

    info = ProvidersManager().hooks["chdb"]
    assert info.hook_class_name.endswith("EmbeddedClickHouseHook") and info.connection_testable
    assert info.connection_id_attribute_name == "clickhouse_conn_id"
    assert issubclass(EmbeddedClickHouseHook, ClickHouseBackfillHook)


def test_the_embedded_form_asks_for_the_data_directory_only():
    form = FORMS["chdb"]
    assert set(form["ui-field-behaviour"]["hidden-fields"]) == {"host", "port", "login", "password", "schema"}
    field = form["conn-fields"]["chdb_path"]
    assert field["label"] == "Data directory"
    assert field["schema"]["type"] == "string"  # required: the connection means nothing without it


@pytest.mark.parametrize("conn_type", sorted(FORMS))
def test_every_field_has_a_human_label_and_a_description_with_an_example(conn_type):
    for name, field in FORMS[conn_type]["conn-fields"].items():
        assert field["label"] and field["label"] != name and not re.fullmatch(r"[a-z_]+", field["label"])
        assert len(field["description"]) > 20, name
        if (
            field["schema"].get("type") not in (["boolean", "null"], "boolean")
            and "enum" not in field["schema"]
        ):
            assert "e.g." in field["description"], f"{conn_type}.{name} gives no example"


@pytest.mark.parametrize("conn_type", sorted(FORMS))
def test_no_choice_is_a_literal_null(conn_type):
    """The UI lists every enum member, None as the word "null"; an empty choice is the clear button."""
    for name, field in FORMS[conn_type]["conn-fields"].items():
        enum = field["schema"].get("enum")
        if enum is not None:
            assert None not in enum, name
            assert field["schema"].get("default") in enum
            assert set(field["schema"].get("values_display", enum)) == set(enum)


def test_no_secret_sits_in_a_form_field_that_airflow_shows():
    """A secret lives in the Password field or in an extra whose name Airflow redacts; the form
    shows no plain field that the docs fill with a secret (the Extra JSON view mirrors every one)."""
    from airflow._shared.secrets_masker.secrets_masker import should_hide_value_for_key

    assert "tls_client_key" not in FORMS["temporal"]["conn-fields"]
    assert "password" in FORMS["temporal"]["ui-field-behaviour"]["relabeling"]
    assert "password" not in FORMS["temporal"]["ui-field-behaviour"]["hidden-fields"]
    assert (
        should_hide_value_for_key("sqlalchemy_dsn") and "sqlalchemy_dsn" in FORMS["wonderware"]["conn-fields"]
    )
    assert "sqlalchemy_url" not in FORMS["wonderware"]["conn-fields"]
    for form in FORMS.values():
        for field in form["conn-fields"].values():
            assert field["schema"].get("format") != "password"  # a masked extra is still in the Extra JSON


def test_the_airflow_api_type_is_offered_without_the_http_provider():
    """docs/sync.md's ``airflow_api_default`` has a type the UI lists and Test can sign in with,
    whether or not apache-airflow-providers-http is installed."""
    from airflow.providers_manager import ProvidersManager

    from airflow_backfill_provider.hooks.airflow_api import AirflowApiHook

    info = ProvidersManager().hooks["airflowapi"]
    assert info.hook_class_name.endswith("AirflowApiHook") and info.connection_testable
    assert info.connection_id_attribute_name == "airflow_api_conn_id" and info.hook_name == "Airflow REST API"
    assert AirflowApiHook.conn_type == "airflowapi"
    form = FORMS["airflowapi"]["ui-field-behaviour"]
    assert form["relabeling"]["host"] == "API server URL" and set(form["hidden-fields"]) == {
        "schema",
        "extra",
    }


# -- the plugin: Test of a connection without a port ----------------------------------------------


def test_airflow_332_refuses_port_zero_and_the_plugin_fixes_it(monkeypatch):
    """The list's Test button sends port 0 for a connection without a port (JavaScript's
    Number(null)); Airflow 3.3.2 calls that another destination and refuses with HTTP 400."""
    import airflow.api_fastapi.app  # noqa: F401  (the plugin patches only in an api-server process)
    from airflow.api_fastapi.core_api.routes.public import connections as routes

    from airflow_backfill_provider.plugins.connection_test import ConnectionTestPlugin, apply_port_fix

    monkeypatch.setattr(routes, "_same_endpoint", routes._same_endpoint)  # restored afterwards
    from airflow.providers.redis.hooks.redis import RedisHook

    # on_load also gives RedisHook a test; the attribute is put back as it was (absent) afterwards
    monkeypatch.setattr(
        RedisHook, "test_connection", getattr(RedisHook, "test_connection", None), raising=False
    )
    fixed_upstream = routes._same_endpoint(0, None)
    ConnectionTestPlugin.on_load()
    same = routes._same_endpoint
    assert same(0, None) and same("", None) and same(None, None) and same("h", "h") and same(5432, 5432)
    assert not same(5432, None) and not same(0, 5432) and not same("other", "h")
    assert apply_port_fix() is False  # once is enough
    if not fixed_upstream:
        assert same.__module__ == "airflow_backfill_provider.plugins.connection_test"


def test_the_plugin_is_registered_as_an_airflow_plugin():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="airflow.plugins") if e.name == "backfill_connection_test"]
    assert ep.value == "airflow_backfill_provider.plugins.connection_test:ConnectionTestPlugin"
