from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
REPOSITORY = "https://github.com/airflow-backfill-provider/airflow-backfill-provider"
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "airflow_backfill_provider" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="airflow-backfill-provider",
    version=VERSION,
    description="Airflow-native, idempotent, observable backfills: Wonderware/AVEVA Historian to "
    "ClickHouse, Temporal workflows and Kubernetes Jobs.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    url=REPOSITORY,
    # Airflow's Providers page links the package name to the "Documentation" URL (read from this
    # metadata, not from get_provider_info()); without it the link points at airflow.apache.org,
    # where this provider has no page.
    project_urls={
        "Documentation": f"{REPOSITORY}/blob/main/docs/README.md",
        "Source": REPOSITORY,
        "Changelog": f"{REPOSITORY}/blob/main/docs/changelog.md",
    },
    packages=find_packages(include=["airflow_backfill_provider", "airflow_backfill_provider.*"]),
    python_requires=">=3.10",
    install_requires=[
        "apache-airflow>=3.3,<4",
        "apache-airflow-providers-common-sql>=1.20",
        "apache-airflow-providers-microsoft-mssql>=4.0",
        # SQL Server's History into Arrow in the driver (reader "arrow", the default on SQL Server);
        # its wheels bundle Microsoft's ODBC Driver 18. pymssql stays: reader "dbapi".
        "mssql-python>=1.16",
        "apache-airflow-providers-clickhousedb>=1.0",
        "clickhouse-connect>=0.8",
        "chdb>=3.0",
        "SQLAlchemy>=2.0",
        "pyarrow>=15",
        "pendulum>=3.0",
        "temporalio>=1.21",
    ],
    extras_require={
        # Arrow readers of History (reader "auto" uses them when installed, else DB-API)
        "postgres": ["psycopg[binary]>=3.1"],
        "sqlite": ["adbc-driver-sqlite>=1.0"],
        "redis": ["apache-airflow-providers-redis>=4.0", "redis>=5"],
        "kubernetes": ["apache-airflow-providers-cncf-kubernetes>=10.0"],
        # scale-out on Celery workers (celery 5.7 removed an import the provider's result backend uses)
        "celery": ["apache-airflow-providers-celery>=3.8", "celery[redis]>=5.5,<5.7"],
        # the historian simulator (`wonderware-simulator`, airflow_backfill_provider.testing)
        "simulator": ["numpy>=1.24"],
    },
    entry_points={
        "apache_airflow_provider": [
            "provider_info=airflow_backfill_provider.get_provider_info:get_provider_info"
        ],
        # Loaded by every Airflow process; in the api-server it fixes the Test button of connections
        # without a port and gives redis connections a Test (plugins/connection_test.py).
        "airflow.plugins": [
            "backfill_connection_test=airflow_backfill_provider.plugins.connection_test:ConnectionTestPlugin",
            # A Kubernetes connection's kube config shown as ***, like a password, in the REST
            # answers of the api-server (plugins/connection_secrets.py).
            "backfill_connection_secrets=airflow_backfill_provider.plugins.connection_secrets:ConnectionSecretsPlugin",
            # In the scheduler: a note on a run that ran nothing because it is dated before the
            # DAG's start date (see airflow_backfill_provider/plugins/run_notes.py).
            "backfill_run_notes=airflow_backfill_provider.plugins.run_notes:RunNotesPlugin",
            # In the api-server: a trigger or backfill of this provider's DAGs with a bad conf is
            # refused in words, before a run exists (plugins/trigger_checks.py).
            "backfill_trigger_checks=airflow_backfill_provider.plugins.trigger_checks:TriggerChecksPlugin",
        ],
        "console_scripts": [
            "wonderware-simulator=airflow_backfill_provider.testing.simulator:main",
        ],
    },
    classifiers=[
        "Framework :: Apache Airflow",
        "Framework :: Apache Airflow :: Provider",
        "Programming Language :: Python :: 3",
    ],
)
