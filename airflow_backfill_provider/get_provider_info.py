"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from airflow_backfill_provider import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-backfill-provider",
        "name": "Backfill",
        "description": "Idempotent, observable backfills: AVEVA/Wonderware Historian to ClickHouse "
        "and missing Temporal workflows.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Wonderware Historian", "tags": ["software"]},
            {"integration-name": "ClickHouse (backfill)", "tags": ["software"]},
            {"integration-name": "Temporal", "tags": ["software"]},
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
        ],
        "sensors": [
            {
                "integration-name": "Temporal",
                "python-modules": ["airflow_backfill_provider.sensors.temporal"],
            },
        ],
        "triggers": [
            {
                "integration-name": "Temporal",
                "python-modules": ["airflow_backfill_provider.triggers.temporal"],
            },
        ],
        # The "clickhouse" connection type belongs to apache-airflow-providers-clickhousedb; our
        # ClickHouseBackfillHook reuses it (with an optional "chdb_path" extra) instead of registering a twin.
        "connection-types": [
            {
                "hook-class-name": "airflow_backfill_provider.hooks.wonderware.WonderwareHook",
                "connection-type": "wonderware",
                "hook-name": "Wonderware / AVEVA Historian",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {
                        "host": "historian.plant.local",
                        "port": "1433",
                        "login": "historian_reader",
                        "schema": "Runtime",
                        "extra": '{"sqlalchemy_url": "sqlite:////tmp/historian.db"}',
                    },
                },
                "conn-fields": {
                    "sqlalchemy_url": {
                        "label": "SQLAlchemy URL (instead of SQL Server)",
                        "schema": {"type": ["string", "null"]},
                        "description": "Point the hook at any SQLAlchemy URL instead of SQL Server, "
                        "e.g. a PostgreSQL or SQLite copy of TagRef/History. Leave empty for SQL Server.",
                    },
                    "reader": {
                        "label": "Reader",
                        "schema": {"type": ["string", "null"], "enum": ["auto", "arrow", "dbapi", None]},
                        "description": "How History rows are read: 'auto' (Arrow where a driver is "
                        "installed, else DB-API), 'arrow' or 'dbapi'.",
                    },
                },
            },
            {
                "hook-class-name": "airflow_backfill_provider.hooks.temporal.TemporalHook",
                "connection-type": "temporal",
                "hook-name": "Temporal",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login"],
                    "relabeling": {"host": "Frontend host", "password": "API key"},
                    "placeholders": {
                        "host": "temporal-frontend.temporal.svc",
                        "port": "7233",
                        "password": "Temporal Cloud API key (optional; implies TLS)",
                    },
                },
                "conn-fields": {
                    "namespace": {
                        "label": "Namespace",
                        "schema": {"type": ["string", "null"]},
                        "description": "Temporal namespace (default: 'default'). Operators, sensors and "
                        "workflow specs can override it.",
                    },
                    "tls": {
                        "label": "Use TLS",
                        "schema": {"type": ["boolean", "null"]},
                        "description": "Server-side TLS with the system CA roots. Implied by an API key or "
                        "any certificate field below.",
                    },
                    "tls_ca_cert": {
                        "label": "TLS CA certificate",
                        "schema": {"type": ["string", "null"]},
                        "description": "PEM text, or the path of a PEM file on the workers and triggerers: "
                        "the CA that signed the server certificate.",
                    },
                    "tls_client_cert": {
                        "label": "TLS client certificate (mTLS)",
                        "schema": {"type": ["string", "null"]},
                        "description": "PEM text or file path of the client certificate; needs the key too.",
                    },
                    "tls_client_key": {
                        "label": "TLS client key (mTLS)",
                        "schema": {"type": ["string", "null"], "format": "password"},
                        "description": "PEM text or file path of the client private key.",
                    },
                    "tls_server_name": {
                        "label": "TLS server name",
                        "schema": {"type": ["string", "null"]},
                        "description": "Name expected on the server certificate (SNI) when it differs from "
                        "the host, e.g. behind a port-forward.",
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (seconds)",
                        "schema": {"type": ["number", "null"], "default": 10},
                        "description": "How long to wait for the frontend before failing.",
                    },
                },
            },
        ],
    }
