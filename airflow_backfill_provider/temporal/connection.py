"""An Airflow connection's fields as ``temporalio.client.Client.connect`` keyword arguments.

The fields become a ``temporalio.envconfig`` profile (the SDK's own model of address, namespace,
API key, TLS and headers), and the SDK turns the profile into connect arguments. The hook passes
the fields in, so the mapping is unit-tested with no Airflow connection and no server.

Secrets stay where Airflow masks them: the Password field holds the API key or, as PEM, the mTLS
client key; an extra holding a key is named ``tls_client_private_key``, a name Airflow redacts.
"""

from __future__ import annotations

import os
import re
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
# The extra of the client key: "private_key" in its name makes Airflow redact it in the UI and the
# REST API. The older name is still read, for connections made before.
KEY_EXTRA = "tls_client_private_key"
LEGACY_KEY_EXTRA = "tls_client_key"
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_BASE64 = re.compile(r"^[A-Za-z0-9+/=]*$")


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
    api_key, key = _password_as_key(password)
    if key is None:
        key_field = KEY_EXTRA if extra.get(KEY_EXTRA) else LEGACY_KEY_EXTRA
        key = _pem_source(extra.get(key_field), key_field)
    ca = _pem_source(extra.get("tls_ca_cert"), "tls_ca_cert")
    cert = _pem_source(extra.get("tls_client_cert"), "tls_client_cert")
    server_name = extra.get("tls_server_name") or None
    if bool(cert) != bool(key):
        missing = "the client key (Password field as PEM, or extra 'tls_client_private_key')"
        raise ConfigurationError(
            "Temporal connection: mTLS needs both the client certificate ('tls_client_cert') and "
            f"{missing}; only {'the key' if key else 'the certificate'} is set."
        )
    tls = None
    if ca or cert or server_name:
        tls = ClientConfigTLS(
            server_name=server_name, server_root_ca_cert=ca, client_cert=cert, client_private_key=key
        )
    return ClientConfigProfile(
        address=address,
        namespace=namespace or extra.get("namespace") or DEFAULT_NAMESPACE,
        api_key=api_key or extra.get("api_key") or None,
        tls=tls,
        grpc_meta=dict(metadata),
    )


def _unprefixed(extra: Mapping[str, Any]) -> dict[str, Any]:
    # Connections saved by older UIs prefix custom fields with extra__temporal__.
    return {k.removeprefix("extra__temporal__"): v for k, v in extra.items()}


def _password_as_key(password: str | None) -> tuple[str | None, str | None]:
    """(API key, client key): the Password field holds one or the other; a PEM block is the key."""
    if password and password.lstrip().startswith("-----BEGIN"):
        return None, normalize_pem(password, "the Password field")
    return password or None, None


def _pem_source(value: Any, what: str) -> str | Path | None:
    """PEM text (its line breaks rebuilt), or the path of an existing file (read later, by the SDK)."""
    if not value:
        return None
    text = str(value).strip()
    if text.startswith("-----BEGIN"):
        return normalize_pem(text, repr(what))
    path = os.path.expanduser(text)
    # os.path.isfile, not Path.is_file: it never raises, so the value never reaches a message.
    if not os.path.isfile(path):
        # The value is neither PEM nor a file: never echo it, it may be a mangled secret.
        raise ConfigurationError(
            f"Temporal connection extra {what!r} must be PEM text (-----BEGIN ...) or the path of a "
            "readable PEM file; the value given is neither."
        )
    return Path(path)


def normalize_pem(text: str, what: str) -> str:
    """PEM text with its line breaks rebuilt: 64 base64 characters a line between BEGIN and END.

    A PEM pasted into a one-line form field arrives with its newlines turned into spaces, or gone;
    the certificate parser then refuses it. Every block (a chain has several) is rebuilt from its
    base64 body. Never echoes the text: it may be a private key.
    """
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ConfigurationError(
            f"Temporal connection: {what} starts like PEM but has no matching -----END ...----- line; "
            "paste the whole PEM block, or give the path of a PEM file."
        )
    rebuilt = []
    for label, body in blocks:
        if ":" in body:  # RFC 1421 headers (Proc-Type: 4,ENCRYPTED): an encrypted legacy key
            raise ConfigurationError(
                f"Temporal connection: {what} holds an encrypted PEM ({label}), which the SDK cannot "
                "use: give it an unencrypted PKCS#8 key (openssl pkcs8 -topk8 -nocrypt)."
            )
        data = "".join(body.split())
        if not data or not _BASE64.match(data):
            raise ConfigurationError(
                f"Temporal connection: the {label} block of {what} is not base64; paste the PEM as "
                "it is, or give the path of a PEM file."
            )
        lines = "\n".join(data[i : i + 64] for i in range(0, len(data), 64))
        rebuilt.append(f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----")
    return "\n".join(rebuilt)
