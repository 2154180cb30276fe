"""An Airflow connection's fields as ``temporalio.client.Client.connect`` keyword arguments.

The fields become a ``temporalio.envconfig`` profile (the SDK's own model of address, namespace,
API key, TLS and headers), and the SDK turns the profile into connect arguments. The hook passes
the fields in, so the mapping is unit-tested with no Airflow connection and no server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.temporal.errors import Endpoint, TemporalConnectionError
from airflow_backfill_provider.utils import as_bool

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.envconfig import ClientConfigProfile

DEFAULT_PORT = 7233
DEFAULT_NAMESPACE = "default"
DEFAULT_CONNECT_TIMEOUT = 10.0
_SCHEMES = ("grpc://", "grpcs://", "http://", "https://", "dns:///")


def client_kwargs_from_connection(
    *,
    host: str | None,
    port: int | None,
    password: str | None,
    extra: Mapping[str, Any],
    namespace: str | None = None,
) -> dict[str, Any]:
    """Map an Airflow connection's fields onto ``temporalio.client.Client.connect`` kwargs.

    PEM files named by the TLS fields are read here; see :func:`connection_profile` for the rest.
    """
    extra = _unprefixed(extra)
    profile = connection_profile(host=host, port=port, password=password, extra=extra, namespace=namespace)
    try:
        kwargs: dict[str, Any] = dict(profile.to_client_connect_config())
    except OSError as err:
        # Only paths already seen to be files get here, so naming the path leaks no secret.
        raise ConfigurationError(
            f"Temporal connection: cannot read the TLS file {err.filename!r}: {err.strerror}."
        ) from err
    if profile.tls is None:
        # The SDK turns TLS on for an API key by itself; the flag only ever switches it on, so a
        # form's unticked box cannot turn off the TLS an API key needs.
        kwargs.pop("tls", None)
        if as_bool(extra.get("tls"), "Temporal connection extra 'tls'"):
            kwargs["tls"] = True
    kwargs["connect_timeout"] = timedelta(
        seconds=float(extra.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT)
    )
    return kwargs


async def connect(kwargs: Mapping[str, Any], endpoint: Endpoint) -> Client:
    """``Client.connect(**kwargs)``; a frontend it cannot reach is a :class:`TemporalConnectionError`."""
    from temporalio.client import Client

    try:
        return await Client.connect(**kwargs)
    except RuntimeError as err:
        raise TemporalConnectionError(
            f"Cannot connect to Temporal at {endpoint.target} (namespace {endpoint.namespace!r}, "
            f"connection {endpoint.conn_id!r}): {err}. Check host, port and TLS settings."
        ) from err


def connection_profile(
    *,
    host: str | None,
    port: int | None,
    password: str | None,
    extra: Mapping[str, Any],
    namespace: str | None = None,
) -> ClientConfigProfile:
    """The connection as a ``temporalio.envconfig.ClientConfigProfile``, validated.

    A ``namespace`` argument overrides the connection's. TLS values stay PEM text or file paths
    (no file is read); a value that is neither is refused without being echoed.
    """
    from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS

    extra = _unprefixed(extra)
    address = (host or "").strip()
    for scheme in _SCHEMES:
        if address.startswith(scheme):
            address = address[len(scheme) :]
    address = address.rstrip("/")
    if not address:
        raise ConfigurationError("The Temporal connection has no host; set it to the frontend's address.")
    if not (":" in address and not port):
        address = f"{address}:{port or DEFAULT_PORT}"
    metadata = extra.get("rpc_metadata") or {}
    if not isinstance(metadata, Mapping) or not all(isinstance(v, str) for v in metadata.values()):
        raise ConfigurationError("Temporal connection extra 'rpc_metadata' must be an object of strings.")
    ca = _pem_source(extra.get("tls_ca_cert"), "tls_ca_cert")
    cert = _pem_source(extra.get("tls_client_cert"), "tls_client_cert")
    key = _pem_source(extra.get("tls_client_key"), "tls_client_key")
    server_name = extra.get("tls_server_name") or None
    if bool(cert) != bool(key):
        raise ConfigurationError(
            "Temporal connection: mTLS needs both 'tls_client_cert' and 'tls_client_key'; only one is set."
        )
    tls = None
    if ca or cert or server_name:
        tls = ClientConfigTLS(
            server_name=server_name, server_root_ca_cert=ca, client_cert=cert, client_private_key=key
        )
    return ClientConfigProfile(
        address=address,
        namespace=namespace or extra.get("namespace") or DEFAULT_NAMESPACE,
        api_key=password or extra.get("api_key") or None,
        tls=tls,
        grpc_meta=dict(metadata),
    )


def _unprefixed(extra: Mapping[str, Any]) -> dict[str, Any]:
    # Connections saved by older UIs prefix custom fields with extra__temporal__.
    return {k.removeprefix("extra__temporal__"): v for k, v in extra.items()}


def _pem_source(value: Any, what: str) -> str | Path | None:
    """PEM text as it is, or the path of an existing file (read later, by the SDK)."""
    if not value:
        return None
    text = str(value).strip()
    if text.startswith("-----BEGIN"):
        return text
    path = os.path.expanduser(text)
    # os.path.isfile, not Path.is_file: it never raises, so the value never reaches a message.
    if not os.path.isfile(path):
        # The value is neither PEM nor a file: never echo it, it may be a mangled secret.
        raise ConfigurationError(
            f"Temporal connection extra {what!r} must be PEM text (-----BEGIN ...) or the path of a "
            "readable PEM file; the value given is neither."
        )
    return Path(path)
