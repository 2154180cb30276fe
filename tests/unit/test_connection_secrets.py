"""The kube config of a Kubernetes connection is redacted like a password once the provider's
plugin has loaded: in every shape a user stores it, by the same redaction the api-server applies to
the REST answers the UI reads (``ConnectionResponse.redact_extra``)."""

from __future__ import annotations

import json
import secrets

import pytest

from airflow_backfill_provider.plugins.connection_secrets import (
    ConnectionSecretsPlugin,
    _maskers,
    hide_extra_names,
)

TOKEN, CLIENT_KEY = f"canary-token-{secrets.token_hex(6)}", f"canary-key-{secrets.token_hex(6)}"
KUBE_CONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "prod", "cluster": {"server": "https://10.0.0.1:6443"}}],
    "users": [{"name": "airflow", "user": {"token": TOKEN, "client-key-data": CLIENT_KEY}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "airflow"}}],
    "current-context": "prod",
}
YAML = f"""apiVersion: v1
kind: Config
users:
- name: airflow
  user:
    token: {TOKEN}
    client-key-data: {CLIENT_KEY}
"""
SHAPES = {
    "JSON text (the form field)": json.dumps(KUBE_CONFIG),
    "YAML text": YAML,
    "JSON object": KUBE_CONFIG,
}
# The connection types the docs prescribe (docs/connections.md, kubernetes.md, sync.md).
DOCUMENTED_TYPES = ("wonderware", "chdb", "clickhouse", "temporal", "kubernetes", "redis", "airflowapi")


@pytest.fixture
def maskers(monkeypatch):
    """The process's maskers, their sensitive names restored after the test."""
    found = list(_maskers())
    for masker in found:
        monkeypatch.setattr(masker, "sensitive_variables_fields", list(masker.sensitive_variables_fields))
    return found


def _shown(extra: dict) -> str:
    """The extra as the api-server's REST answer shows it."""
    from airflow.api_fastapi.core_api.datamodels.connections import ConnectionResponse

    return ConnectionResponse.redact_extra(json.dumps(extra))


@pytest.mark.parametrize("shape", SHAPES)
def test_the_plugin_hides_a_kube_config_in_every_shape(maskers, shape):
    extra = {"kube_config": SHAPES[shape], "namespace": "cresta-cron", "cluster_context": "prod"}
    ConnectionSecretsPlugin.on_load()
    shown = _shown(extra)
    assert TOKEN not in shown and CLIENT_KEY not in shown, shown
    assert json.loads(shown)["namespace"] == "cresta-cron"  # the rest stays readable
    assert json.loads(shown)["cluster_context"] == "prod"


def test_without_the_plugin_airflow_shows_the_kube_config(maskers):
    """Why the plugin exists: Airflow 3.3 redacts by key name, and ``kube_config`` holds none of its
    sensitive words (text shows whole; an object shows its client key)."""
    for masker in maskers:
        masker.sensitive_variables_fields = [
            n for n in masker.sensitive_variables_fields if n != "kube_config"
        ]
    assert TOKEN in _shown({"kube_config": json.dumps(KUBE_CONFIG)})
    assert CLIENT_KEY in _shown({"kube_config": KUBE_CONFIG})


def test_hiding_is_idempotent_and_applies_to_both_maskers(maskers):
    hide_extra_names()
    assert hide_extra_names() == []
    for masker in maskers:
        assert masker.sensitive_variables_fields.count("kube_config") == 1
        assert masker.should_hide_value_for_key("kube_config")


def test_every_password_field_of_a_documented_connection_type_is_hidden(maskers):
    """A form field the provider declares a password (``format: password``) must be redacted in the
    REST answers too; Airflow 3.3 only draws it as a password input."""
    from airflow.providers_manager import ProvidersManager

    ConnectionSecretsPlugin.on_load()
    widgets = ProvidersManager().connection_form_widgets
    declared = {
        key: widget.field_name
        for key, widget in widgets.items()
        if widget.is_sensitive and key.split("__")[1] in DOCUMENTED_TYPES
    }
    assert "extra__kubernetes__kube_config" in declared  # the cncf-kubernetes provider is installed
    for masker in maskers:
        assert all(masker.should_hide_value_for_key(name) for name in declared.values()), declared


def test_a_deployment_that_turned_hiding_off_keeps_it_off(maskers, monkeypatch):
    for masker in maskers:
        monkeypatch.setattr(masker, "hide_sensitive_var_conn_fields", False)
    ConnectionSecretsPlugin.on_load()
    assert not any(masker.should_hide_value_for_key("kube_config") for masker in maskers)


def test_the_plugin_is_registered_as_an_airflow_plugin():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="airflow.plugins") if e.name == "backfill_connection_secrets"]
    assert ep.value == "airflow_backfill_provider.plugins.connection_secrets:ConnectionSecretsPlugin"
