# The image of every Airflow service in docker-compose.yaml (and a starting point for Kubernetes):
# the official Airflow image with this provider and its extras installed.
#   docker build -t airflow-backfill-provider:local .
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2
FROM ${AIRFLOW_IMAGE}

# simulator: numpy, for historian-init's wonderware-simulator; redis: the sync's tag cache;
# kubernetes: the Kubernetes Job operators; postgres: the Arrow reader of a PostgreSQL historian copy.
# SQL Server (pymssql), ClickHouse (clickhouse-connect, chdb) and Temporal come with the provider.
ARG PROVIDER_EXTRAS=postgres,redis,kubernetes,simulator

# The constraints the base image's Airflow was built and tested with, which the official image keeps
# in ${HOME}/constraints.txt (docs: "Example of adding PyPI package with constraints"). Every package
# they name (Celery, the providers, protobuf, SQLAlchemy, ...) stays at the image's version; packages
# they do not name (the provider's own, such as chdb or temporalio) resolve freely. Empty: that file.
# Another file or URL: --build-arg AIRFLOW_CONSTRAINTS=..., e.g. the constraints-<version> branch's
# constraints-<python>.txt of the apache/airflow repository.
ARG AIRFLOW_CONSTRAINTS=

COPY --chown=airflow:0 setup.py pyproject.toml README.md /opt/airflow/src/airflow-backfill-provider/
COPY --chown=airflow:0 airflow_backfill_provider /opt/airflow/src/airflow-backfill-provider/airflow_backfill_provider

# Naming apache-airflow at the image's own version (AIRFLOW_VERSION is set by the base image) keeps
# pip from upgrading or downgrading Airflow while it resolves the provider's requirements; the
# constraints keep it from moving anything the image was tested with. `pip check` then fails the
# build on any broken requirement instead of leaving it to the first task that imports it.
RUN pip install --no-cache-dir --constraint "${AIRFLOW_CONSTRAINTS:-${HOME}/constraints.txt}" \
      "apache-airflow==${AIRFLOW_VERSION}" \
      "/opt/airflow/src/airflow-backfill-provider[${PROVIDER_EXTRAS}]" \
    && pip check
