"""The Temporal connection mapping: connection fields to ``Client.connect`` kwargs (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.temporal.connection import client_kwargs_from_connection, connection_profile
from airflow_backfill_provider.testing.tls import client_key_and_cert

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


# -- connection mapping (pure) -------------------------------------------------------------------


def test_client_kwargs_defaults():
    kw = client_kwargs_from_connection(host="temporal.local", port=None, password=None, extra={})
    assert kw["target_host"] == "temporal.local:7233"
    assert kw["namespace"] == "default"
    assert "tls" not in kw and "api_key" not in kw


def test_client_kwargs_api_key_namespace_and_scheme():
    kw = client_kwargs_from_connection(
        host="grpcs://ns.acct.tmprl.cloud", port=7233, password="secret-key", extra={"namespace": "ingestion"}
    )
    assert kw["target_host"] == "ns.acct.tmprl.cloud:7233"
    assert kw["namespace"] == "ingestion"
    assert kw["api_key"] == "secret-key"  # the SDK turns TLS on by itself when an API key is set
    override = client_kwargs_from_connection(
        host="h", port=1, password=None, extra={"namespace": "a"}, namespace="b"
    )
    assert override["namespace"] == "b"


def test_client_kwargs_mtls_from_pem_and_file(tmp_path):
    key_file = tmp_path / "client.key"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n")
    kw = client_kwargs_from_connection(
        host="h",
        port=7233,
        password=None,
        extra={
            "tls_client_cert": PEM,
            "tls_client_key": str(key_file),
            "tls_ca_cert": PEM,
            "tls_server_name": "frontend.internal",
        },
    )
    tls = kw["tls"]
    assert tls.client_cert == PEM.strip().encode()
    assert tls.client_private_key.startswith(b"-----BEGIN PRIVATE KEY")
    assert tls.server_root_ca_cert == PEM.strip().encode()
    assert tls.domain == "frontend.internal"


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"tls_client_cert": PEM}, "needs both"),
        ({"tls_ca_cert": "/no/such/ca.pem"}, "PEM text"),
        ({"rpc_metadata": {"x": 1}}, "rpc_metadata"),
    ],
)
def test_client_kwargs_bad_tls_settings(extra, message):
    with pytest.raises(ConfigurationError, match=message):
        client_kwargs_from_connection(host="h", port=1, password=None, extra=extra)


def test_client_kwargs_plain_tls_flag_and_prefixed_fields():
    kw = client_kwargs_from_connection(host="h", port=1, password=None, extra={"tls": "true"})
    assert kw["tls"] is True
    # An unticked box never switches off the TLS an API key implies.
    kw = client_kwargs_from_connection(host="h", port=1, password="key", extra={"tls": False})
    assert "tls" not in kw and kw["api_key"] == "key"
    kw = client_kwargs_from_connection(
        host="h", port=1, password=None, extra={"extra__temporal__namespace": "old-ui"}
    )
    assert kw["namespace"] == "old-ui"


# -- the envconfig profile -----------------------------------------------------------------------


def test_profile_keeps_pem_text_and_file_paths_without_reading(tmp_path):
    key_file = tmp_path / "client.key"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n")
    profile = connection_profile(
        host="h",
        port=None,
        password="key",
        extra={"tls_client_cert": PEM, "tls_client_key": str(key_file), "rpc_metadata": {"x-team": "a"}},
    )
    assert profile.address == "h:7233" and profile.namespace == "default" and profile.api_key == "key"
    assert profile.tls.client_cert == PEM.strip()
    assert profile.tls.client_private_key == Path(key_file)
    assert profile.grpc_meta == {"x-team": "a"}
    # An API key with a TLS profile: the certificate settings win over the bare "TLS on".
    kw = client_kwargs_from_connection(
        host="h", port=None, password="key", extra={"tls_client_cert": PEM, "tls_client_key": str(key_file)}
    )
    assert kw["tls"].client_private_key.startswith(b"-----BEGIN PRIVATE KEY")


def test_host_with_its_own_port_and_metadata():
    kw = client_kwargs_from_connection(
        host="https://frontend:7000/", port=None, password=None, extra={"rpc_metadata": {"a": "b"}}
    )
    assert kw["target_host"] == "frontend:7000"
    assert kw["rpc_metadata"] == {"a": "b"}
    assert kw["connect_timeout"].total_seconds() == 10


def test_a_value_that_is_neither_pem_nor_a_file_is_never_echoed():
    secret = "not-a-pem-but-a-mangled-secret" * 300  # also too long for a file name
    with pytest.raises(ConfigurationError) as info:
        client_kwargs_from_connection(host="h", port=1, password=None, extra={"tls_client_key": secret})
    assert "tls_client_key" in str(info.value)
    assert "mangled" not in str(info.value)


def test_tls_flag_uses_the_one_boolean_parser():
    for text in ("yes", "on", "1", "TRUE"):
        assert (
            client_kwargs_from_connection(host="h", port=1, password=None, extra={"tls": text})["tls"] is True
        )
    for off in ("false", "off", "", None):
        assert "tls" not in client_kwargs_from_connection(host="h", port=1, password=None, extra={"tls": off})
    with pytest.raises(ConfigurationError, match="tls"):
        client_kwargs_from_connection(host="h", port=1, password=None, extra={"tls": "maybe"})


def test_missing_host_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="no host"):
        client_kwargs_from_connection(host=" grpc:// ", port=None, password=None, extra={})


# -- secrets where Airflow masks them, and PEM that survives a one-line form field ------------------


@pytest.mark.parametrize("flatten", [lambda p: p.replace("\n", " "), lambda p: p.replace("\n", "")])
def test_pem_from_a_one_line_field_is_rebuilt_and_parses(flatten):
    """A PEM pasted into a one-line input loses its line breaks (spaces, or nothing, depending on the
    browser); the rebuilt text parses as the same key and certificate. (That the SDK refuses the
    flattened text is shown against the real SDK in tests/temporal/test_temporal_hook.py.)"""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from airflow_backfill_provider.temporal.connection import normalize_pem

    key_pem, cert_pem = client_key_and_cert()
    chain = cert_pem + cert_pem  # a CA bundle: several blocks
    key = serialization.load_pem_private_key(normalize_pem(flatten(key_pem), "k").encode(), None)
    cert = x509.load_pem_x509_certificate(normalize_pem(flatten(cert_pem), "c").encode())
    assert cert.public_key() == key.public_key()
    assert len(x509.load_pem_x509_certificates(normalize_pem(flatten(chain), "c").encode())) == 2
    assert normalize_pem(cert_pem, "c") == cert_pem.strip()  # a good PEM stays as it is


def test_client_key_from_the_password_field():
    """The Password field holds the API key, or the mTLS client key as PEM (flattened or not)."""
    key_pem, cert_pem = client_key_and_cert()
    kw = client_kwargs_from_connection(
        host="h",
        port=7233,
        password=key_pem.replace("\n", " "),
        extra={"tls_client_cert": cert_pem.replace("\n", " ")},
    )
    assert "api_key" not in kw or kw["api_key"] is None
    assert kw["tls"].client_private_key == key_pem.strip().encode()
    assert kw["tls"].client_cert == cert_pem.strip().encode()
    with pytest.raises(ConfigurationError, match="client certificate"):
        client_kwargs_from_connection(host="h", port=7233, password=key_pem, extra={})


def test_client_key_extra_new_name_wins_and_old_name_is_still_read(tmp_path):
    from airflow._shared.secrets_masker.secrets_masker import should_hide_value_for_key

    from airflow_backfill_provider.temporal.connection import KEY_EXTRA, LEGACY_KEY_EXTRA

    # Why the rename: Airflow's UI and REST API redact an extra by its name.
    assert should_hide_value_for_key(KEY_EXTRA) and not should_hide_value_for_key(LEGACY_KEY_EXTRA)
    key_pem, cert_pem = client_key_and_cert()
    old_key = tmp_path / "old.key"
    old_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    new = client_kwargs_from_connection(
        host="h",
        port=1,
        password="api-key",
        extra={"tls_client_cert": cert_pem, KEY_EXTRA: key_pem, LEGACY_KEY_EXTRA: str(old_key)},
    )
    assert new["tls"].client_private_key == key_pem.strip().encode()
    assert new["api_key"] == "api-key"  # an API key and mTLS together: the key goes in the extra
    old = client_kwargs_from_connection(
        host="h", port=1, password=None, extra={"tls_client_cert": cert_pem, LEGACY_KEY_EXTRA: str(old_key)}
    )
    assert old["tls"].client_private_key.startswith(b"-----BEGIN PRIVATE KEY-----\nAAAA")


@pytest.mark.parametrize(
    "value, message",
    [
        ("-----BEGIN PRIVATE KEY----- c2VjcmV0LWtleS1ib2R5", "no matching -----END"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nc2VjcmV0LWtleS1ib2R5\n"
            "-----END RSA PRIVATE KEY-----",
            "encrypted PEM",
        ),
        ("-----BEGIN PRIVATE KEY-----\nc2VjcmV0!!LWtleS1ib2R5\n-----END PRIVATE KEY-----", "not base64"),
    ],
)
def test_a_broken_pem_key_is_refused_in_words_and_never_echoed(value, message):
    with pytest.raises(ConfigurationError, match=message) as info:
        client_kwargs_from_connection(host="h", port=1, password=value, extra={"tls_client_cert": PEM})
    assert "c2VjcmV0" not in str(info.value) and "Password field" in str(info.value)
