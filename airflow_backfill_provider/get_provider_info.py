"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from airflow_backfill_provider import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-backfill-provider",
        "name": "Backfill",
        "description": "Idempotent, observable backfills: AVEVA/Wonderware Historian to ClickHouse, "
        "missing Temporal workflows, and Kubernetes Jobs from a CronJob's template.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Wonderware Historian", "tags": ["software"]},
            {"integration-name": "ClickHouse (backfill)", "tags": ["software"]},
            {"integration-name": "Temporal", "tags": ["software"]},
            {"integration-name": "Kubernetes (Jobs from CronJobs)", "tags": ["software"]},
            {"integration-name": "Airflow REST API", "tags": ["software"]},
        ],
        "hooks": [
            {
                "integration-name": "Wonderware Historian",
                "python-modules": ["airflow_backfill_provider.hooks.wonderware"],
            },
            {
                "integration-name": "ClickHouse (backfill)",
                "python-modules": ["airflow_backfill_provider.hooks.clickhouse"],
            },
            {
                "integration-name": "Temporal",
                "python-modules": ["airflow_backfill_provider.hooks.temporal"],
            },
            {
                # The connection type "kubernetes" is the cncf-kubernetes provider's; this module
                # composes its KubernetesHook.
                "integration-name": "Kubernetes (Jobs from CronJobs)",
                "python-modules": ["airflow_backfill_provider.hooks.kubernetes"],
            },
            {
                # the sync's retroactive backfill (connection type airflowapi)
                "integration-name": "Airflow REST API",
                "python-modules": ["airflow_backfill_provider.hooks.airflow_api"],
            },
        ],
        "operators": [
            {
                "integration-name": "Wonderware Historian",
                "python-modules": ["airflow_backfill_provider.operators.wonderware"],
            },
            {
                "integration-name": "Temporal",
                "python-modules": [
                    "airflow_backfill_provider.operators.temporal",
                    "airflow_backfill_provider.operators.workflow_backfill",
                ],
            },
            {
                "integration-name": "Kubernetes (Jobs from CronJobs)",
                "python-modules": ["airflow_backfill_provider.operators.kubernetes"],
            },
        ],
        "sensors": [
            {
                "integration-name": "Temporal",
                "python-modules": ["airflow_backfill_provider.sensors.temporal"],
            },
            {
                "integration-name": "ClickHouse (backfill)",
                "python-modules": ["airflow_backfill_provider.sensors.clickhouse"],
            },
        ],
        "triggers": [
            {
                "integration-name": "Temporal",
                "python-modules": ["airflow_backfill_provider.triggers.temporal"],
            },
            {
                "integration-name": "ClickHouse (backfill)",
                "python-modules": ["airflow_backfill_provider.triggers.clickhouse"],
            },
            {
                "integration-name": "Kubernetes (Jobs from CronJobs)",
                "python-modules": ["airflow_backfill_provider.triggers.kubernetes"],
            },
        ],
        # The "clickhouse" connection type (a server) belongs to apache-airflow-providers-clickhousedb,
        # and our ClickHouseBackfillHook reuses it. Embedded ClickHouse has a type of its own, "chdb",
        # so that its form asks for the data directory and its Test opens it (the clickhousedb hook
        # behind the "clickhouse" type knows nothing of chdb). Secrets live only in the Password
        # field or in extras whose names Airflow redacts (see docs/connections.md).
        "connection-types": [
            {
                "hook-class-name": "airflow_backfill_provider.hooks.wonderware.WonderwareHook",
                "connection-type": "wonderware",
                "hook-name": "Wonderware / AVEVA Historian",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"host": "SQL Server host", "schema": "Database"},
                    "placeholders": {
                        "host": "historian.plant.local (leave empty with a SQLAlchemy URL)",
                        "port": "1433",
                        "login": "historian_reader",
                        "password": "the login's password (also for a SQLAlchemy URL)",
                        "schema": "Runtime",
                    },
                },
                "conn-fields": {
                    "sqlalchemy_dsn": {
                        "label": "SQLAlchemy URL (instead of SQL Server)",
                        "schema": {"type": ["string", "null"]},
                        "description": "Any database holding TagRef/History instead of SQL Server, e.g. "
                        "sqlite:////data/historian.db or postgresql+psycopg://historian.plant.local:5432/"
                        "historian. Put no password in it: Login and Password above are used. Airflow "
                        "shows this field as *** once saved. Leave empty for SQL Server.",
                    },
                    "reader": {
                        "label": "History reader",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["auto", "arrow", "dbapi"],
                            "values_display": {
                                "auto": "auto: Arrow where its driver is installed, else DB-API",
                                "arrow": "arrow: mssql-python, PostgreSQL COPY or SQLite ADBC, "
                                "columns outside Python",
                                "dbapi": "dbapi: a server-side cursor (pymssql on SQL Server)",
                            },
                            "default": "auto",
                        },
                        "description": "How History rows are read. 'auto' suits every source.",
                    },
                    "encrypt": {
                        "label": "Encrypt (SQL Server)",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["auto", "yes", "no", "strict"],
                            "values_display": {
                                "auto": "auto: the driver's default (mssql-python: yes; pymssql: "
                                "when the server offers it)",
                                "yes": "yes: TLS always",
                                "no": "no: plain text (a server without TLS)",
                                "strict": "strict: TDS 8, TLS before anything else",
                            },
                            "default": "auto",
                        },
                        "description": "TLS between the workers and SQL Server (ODBC's Encrypt).",
                    },
                    "trust_server_certificate": {
                        "label": "Trust the server certificate (SQL Server)",
                        "schema": {"type": ["boolean", "null"]},
                        "description": "On: accept a certificate no trusted authority signed (a "
                        "self-signed SQL Server). mssql-python only; FreeTDS (pymssql) never checks it.",
                    },
                    "login_timeout": {
                        "label": "Login timeout (seconds)",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                        "description": "SQL Server only: how long pymssql waits to log in, e.g. 15.",
                    },
                    "retry_attempts": {
                        "label": "Attempts per source call",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 4},
                        "description": "Calls in all, e.g. 4, when the source is lost, times out or is "
                        "down (never for bad credentials or an unknown database), with exponential "
                        "backoff from 1 s.",
                    },
                },
            },
            {
                "hook-class-name": "airflow_backfill_provider.hooks.clickhouse.EmbeddedClickHouseHook",
                "connection-type": "chdb",
                "hook-name": "ClickHouse, embedded (chdb)",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "port", "login", "password", "schema"],
                    "relabeling": {},
                    "placeholders": {},
                },
                "conn-fields": {
                    "chdb_path": {
                        "label": "Data directory",
                        "schema": {"type": "string", "minLength": 1},
                        "description": "Directory of the embedded ClickHouse database, on every worker "
                        "that runs the load, e.g. /var/lib/airflow/clickhouse. Created if missing; the "
                        "user running the tasks needs write access to it and to its parent (lock file).",
                    },
                },
            },
            {
                "hook-class-name": "airflow_backfill_provider.hooks.temporal.TemporalHook",
                "connection-type": "temporal",
                "hook-name": "Temporal",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login"],
                    "relabeling": {
                        "host": "Frontend host",
                        "password": "API key, or mTLS client key (PEM)",
                    },
                    "placeholders": {
                        "host": "temporal-frontend.temporal.svc",
                        "port": "7233",
                        "password": "Temporal Cloud API key, or the client's private key as PEM",
                    },
                },
                "conn-fields": {
                    "namespace": {
                        "label": "Namespace",
                        "schema": {"type": ["string", "null"]},
                        "description": "Temporal namespace, e.g. ingestion (default: 'default'). "
                        "Operators, sensors and workflow specs can override it.",
                    },
                    "tls": {
                        "label": "Use TLS",
                        "schema": {"type": ["boolean", "null"]},
                        "description": "Server-side TLS with the system CA roots. Implied by an API key, "
                        "a client key or any certificate field below.",
                    },
                    "tls_ca_cert": {
                        "label": "TLS CA certificate",
                        "schema": {"type": ["string", "null"], "format": "multiline"},
                        "description": "The CA that signed the server certificate: PEM text, or the path "
                        "of a PEM file on the workers and triggerers, e.g. /etc/temporal/ca.pem.",
                    },
                    "tls_client_cert": {
                        "label": "TLS client certificate (mTLS)",
                        "schema": {"type": ["string", "null"], "format": "multiline"},
                        "description": "The client certificate: PEM text or file path, e.g. "
                        "/etc/temporal/client.pem. Its private key goes in the password field above "
                        "(as PEM), or its file path in tls_client_private_key in the extra.",
                    },
                    "tls_server_name": {
                        "label": "TLS server name",
                        "schema": {"type": ["string", "null"]},
                        "description": "Name expected on the server certificate (SNI) when it differs from "
                        "the host, e.g. temporal.internal behind a port-forward.",
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (seconds)",
                        "schema": {"type": ["number", "null"], "minimum": 0, "default": 10},
                        "description": "How long to wait for the frontend before failing, e.g. 10.",
                    },
                },
            },
            {
                # The sync's retroactive backfill calls Airflow's REST API. A type of its own, so the
                # UI offers it without the http provider and its Test signs in.
                "hook-class-name": "airflow_backfill_provider.hooks.airflow_api.AirflowApiHook",
                "connection-type": "airflowapi",
                "hook-name": "Airflow REST API",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "extra"],
                    "relabeling": {"host": "API server URL", "password": "Password, or a JWT"},
                    "placeholders": {
                        "host": "http://airflow-apiserver (https:// with TLS)",
                        "port": "8080",
                        "login": "a user allowed to trigger wonderware_backfill",
                        "password": "the user's password; alone, a ready JWT",
                    },
                },
                "conn-fields": {},
            },
        ],
    }
