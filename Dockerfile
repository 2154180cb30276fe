# The image of every Airflow service in docker-compose.yaml (and a starting point for Kubernetes):
# the official Airflow image with this provider and its extras installed.
#   docker build -t airflow-backfill-provider:local .
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2
FROM ${AIRFLOW_IMAGE}

# simulator: numpy, for historian-init's wonderware-simulator; redis: the sync's tag cache;
# kubernetes: the Kubernetes Job operators; postgres: the Arrow reader of a PostgreSQL historian copy.
# SQL Server (pymssql), ClickHouse (clickhouse-connect, chdb) and Temporal come with the provider.
ARG PROVIDER_EXTRAS=postgres,redis,kubernetes,simulator

COPY --chown=airflow:0 setup.py pyproject.toml README.md /opt/airflow/src/airflow-backfill-provider/
COPY --chown=airflow:0 airflow_backfill_provider /opt/airflow/src/airflow-backfill-provider/airflow_backfill_provider

# Naming apache-airflow at the image's own version (AIRFLOW_VERSION is set by the base image) keeps
# pip from upgrading or downgrading Airflow while it resolves the provider's requirements.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
      "/opt/airflow/src/airflow-backfill-provider[${PROVIDER_EXTRAS}]"
