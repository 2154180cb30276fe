"""The connections of docs/connections.md and docs/temporal.md, as the browser tests create them.

Each secret is a *canary*: a random string that must never come back from the api-server to the
browser (REST answers, the Extra Fields JSON view). Connections that cannot reach a server here
(SQL Server, Temporal Cloud) point at a closed loopback port, so their Test fails fast and must say
why in words.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field


def canary(name: str) -> str:
    return f"canary-{name}-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class UIConnection:
    conn_id: str
    conn_type: str
    fields: dict = field(default_factory=dict)  # host, port, login, password, schema
    extra: dict = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # canaries held by this connection
    test_succeeds: bool = True  # whether its Test button must report success here

    def rest_body(self) -> dict:
        """The body of ``POST /api/v2/connections`` (extra as a JSON string, as the UI sends it)."""
        return {
            "connection_id": self.conn_id,
            "conn_type": self.conn_type,
            **self.fields,
            "extra": json.dumps(self.extra),
        }


def local_connections(*, historian_url: str, chdb_path: str) -> list[UIConnection]:
    """The two default connections of a local installation (``make ui``, the browser tests): the
    historian at a SQLAlchemy URL (the demo's SQLite) and embedded ClickHouse in ``chdb_path``."""
    return [
        UIConnection("wonderware_default", "wonderware", extra={"sqlalchemy_dsn": historian_url}),
        UIConnection("clickhouse_default", "chdb", extra={"chdb_path": chdb_path}),
    ]


def kube_config(server: str, token: str, client_key: str) -> dict:
    """A kube config whose current user signs in with a token; another user has a client key
    (``load_kube_config`` reads only the current context's user)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "prod", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [
            {"name": "airflow", "user": {"token": token}},
            {"name": "admin", "user": {"client-certificate-data": "Y2VydA==", "client-key-data": client_key}},
        ],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "airflow"}}],
        "current-context": "prod",
    }


def documented_connections(
    *,
    historian_url: str,
    chdb_path: str,
    temporal_address: str,
    closed_port: int,
    redis_port: int,
    redis_password: str,
) -> list[UIConnection]:
    """The documented connections: the SQLite historian and embedded ClickHouse that the demo uses,
    a Temporal dev server, the sync's Redis (asking for ``redis_password``), and the production
    shapes holding secrets: SQL Server with a password, a PostgreSQL historian URL with its password
    in the Password field, a URL with a password left inside it (which the docs advise against, but
    must not leak either), Temporal Cloud with an API key, Temporal with an mTLS client key (PEM) in
    the Password field or as a file path in ``tls_client_private_key``, and Kubernetes clusters
    whose kube config holds a token and a client key, as text (what the form's field stores) and as
    a JSON object."""
    temporal_host, temporal_port = temporal_address.rsplit(":", 1)
    sql_password, pg_password, url_password = canary("sqlserver"), canary("pg"), canary("in-url")
    api_key, tls_key, key_path = canary("api-key"), canary("tls-key"), canary("key-path")
    pem_key = f"-----BEGIN PRIVATE KEY-----\n{tls_key}\n-----END PRIVATE KEY-----\n"
    pem_cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    closed = {"host": "127.0.0.1", "port": closed_port}
    kube_token, kube_key = canary("kube-token"), canary("kube-key")
    kube_text_token, kube_text_key = canary("kube-text-token"), canary("kube-text-key")
    kube_server = f"https://127.0.0.1:{closed_port}"
    return [
        UIConnection(
            "redis_default",
            "redis",
            fields={"host": "127.0.0.1", "port": redis_port, "password": redis_password},
            secrets=(redis_password,),
        ),
        UIConnection(
            "kubernetes_default",
            "kubernetes",
            extra={
                "kube_config": json.dumps(kube_config(kube_server, kube_text_token, kube_text_key)),
                "namespace": "cresta-cron",
            },
            secrets=(kube_text_token, kube_text_key),
            test_succeeds=False,
        ),
        UIConnection(
            "kubernetes_object",
            "kubernetes",
            extra={"kube_config": kube_config(kube_server, kube_token, kube_key), "namespace": "cresta-cron"},
            secrets=(kube_token, kube_key),
            test_succeeds=False,
        ),
        *local_connections(historian_url=historian_url, chdb_path=chdb_path),
        UIConnection(
            "temporal_default",
            "temporal",
            fields={"host": temporal_host, "port": int(temporal_port)},
            extra={"namespace": "default"},
        ),
        UIConnection(
            "wonderware_sqlserver",
            "wonderware",
            fields={**closed, "login": "historian_reader", "password": sql_password, "schema": "Runtime"},
            extra={"login_timeout": 5},
            secrets=(sql_password,),
            test_succeeds=False,
        ),
        UIConnection(
            "wonderware_postgres",
            "wonderware",
            fields={"login": "reader", "password": pg_password},
            extra={"sqlalchemy_dsn": f"postgresql+psycopg://127.0.0.1:{closed_port}/historian"},
            secrets=(pg_password,),
            test_succeeds=False,
        ),
        UIConnection(
            "wonderware_url_password",
            "wonderware",
            extra={"sqlalchemy_dsn": f"postgresql+psycopg://reader:{url_password}@127.0.0.1:{closed_port}/h"},
            secrets=(url_password,),
            test_succeeds=False,
        ),
        UIConnection(
            "temporal_cloud",
            "temporal",
            fields={**closed, "password": api_key},
            extra={"namespace": "backfill.a1b2c", "connect_timeout": 3},
            secrets=(api_key,),
            test_succeeds=False,
        ),
        UIConnection(
            "temporal_mtls",
            "temporal",
            fields={**closed, "password": pem_key},
            extra={"namespace": "backfill", "tls_client_cert": pem_cert, "connect_timeout": 3},
            secrets=(tls_key,),
            test_succeeds=False,
        ),
        UIConnection(
            "temporal_mtls_files",
            "temporal",
            fields=closed,
            extra={
                "tls_client_cert": "/etc/temporal/client.pem",
                "tls_client_private_key": f"/etc/temporal/{key_path}.key",
                "connect_timeout": 3,
            },
            secrets=(key_path,),
            test_succeeds=False,
        ),
    ]
