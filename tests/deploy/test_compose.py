"""docker-compose.yaml, Dockerfile and .env.example, checked without a Docker engine (none runs here).

The file is validated twice: against the Compose Specification's JSON schema (vendored, see
compose_spec.SOURCE.md) and by Debian's ``docker-compose config`` (installed by
scripts/system-deps.sh), whose resolved output, interpolated with .env.example, is what the other
tests read: the connections, the environment the DAGs parse with, health checks and start order.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.deploy.compose_stack import (
    AIRFLOW_SERVICES,
    COMPOSE,
    CONNECTIONS,
    ENV_EXAMPLE,
    NOT_CHECKED,
    ONE_SHOT,
    ROOT,
    SCHEMA,
    SECRETS,
    airflow_env,
    depends,
    docker_compose,
    env_example,
)

# -- the file is valid Compose ---------------------------------------------------------------


def test_schema_accepts_the_file_and_its_resolved_form(raw, resolved):
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(raw, schema)
    jsonschema.validate(resolved, schema)


def test_schema_check_has_teeth(raw):
    """The same check refuses a typo in a start condition and an unknown service key."""
    schema = json.loads(SCHEMA.read_text())
    broken = copy.deepcopy(raw)
    broken["services"]["airflow-scheduler"]["depends_on"]["airflow-init"]["condition"] = "service_completed"
    with pytest.raises(jsonschema.ValidationError, match="service_completed"):
        jsonschema.validate(broken, schema)
    broken = copy.deepcopy(raw)
    broken["services"]["redis"]["healthchek"] = broken["services"]["redis"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError, match="healthchek"):
        jsonschema.validate(broken, schema)


def test_docker_compose_config_accepts_the_file():
    done = docker_compose("config", "--quiet")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    done = docker_compose("config", "--services")
    assert set(done.stdout.split()) == AIRFLOW_SERVICES | {
        "postgres",
        "redis",
        "clickhouse",
        "sqlserver",
        "historian-init",
        "temporal",
        "temporal-ui",
        "airflow-log-groomer",
    }


def test_no_secret_has_a_value_in_the_file(tmp_path):
    """Every secret is ``${NAME:?...}``: without .env, docker-compose stops and names it."""
    text = COMPOSE.read_text()
    for name in SECRETS:
        uses = re.findall(r"(?<!\$)\$\{" + name + r"(\W)", text)  # $${X}: the container's shell
        assert uses and set(uses) == {":"}, f"{name} must be read as ${{{name}:?...}}"
        assert re.findall(r"(?<!\$)\$\{" + name + r":(.)", text) == ["?"] * len(uses), name
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = docker_compose("config", "--quiet", env_file=empty)
    assert done.returncode != 0
    assert re.search(r"set \w+_PASSWORD in \.env \(see \.env\.example\)", done.stderr), done.stderr


def test_sql_server_admin_password_stays_with_sql_server(services):
    holders = {name for name, s in services.items() if "MSSQL_SA_PASSWORD" in (s.get("environment") or {})}
    assert holders == {"sqlserver", "historian-init"}
    # and the Airflow processes read the historian with the read-only login only
    assert env_example()["MSSQL_SA_PASSWORD"] not in json.dumps(airflow_env(services))


# -- .env.example ----------------------------------------------------------------------------


def test_env_example_holds_exactly_the_variables_the_file_reads():
    # $${HOSTNAME} is escaped: the container's shell expands it, not docker compose
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    assert set(env_example()) == used


class _Recording(dict):
    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def _settings_classes() -> list[type]:
    """Every DAG's settings object: a new DAG's settings are checked here without editing this file."""
    from airflow_backfill_provider import settings

    classes = [getattr(settings, name) for name in settings.__all__]
    assert len(classes) >= 3 and all(hasattr(c, "from_env") for c in classes)
    return classes


def test_every_dag_setting_is_in_env_example_and_reaches_airflow(services):
    recording = _Recording()
    for settings_class in _settings_classes():
        settings_class.from_env(recording)
    assert {
        "WONDERWARE_BACKFILL_START_DATE",
        "MISSING_WORKFLOW_BACKFILL_SETTLE",
        "TEMPORAL_CONN_ID",
    } <= recording.read
    assert recording.read <= set(env_example()), recording.read - set(env_example())
    for service in AIRFLOW_SERVICES:
        assert recording.read <= set(services[service]["environment"]), service


def test_compose_defaults_are_the_package_defaults(tmp_path):
    """With only the secrets in .env, the DAGs get exactly the settings objects' defaults: the
    file's fallbacks (``${X:-default}``) agree with the package, and .env.example's values too."""
    example = env_example()
    secrets_only = tmp_path / "secrets.env"
    secrets_only.write_text("".join(f"{k}={example[k]}\n" for k in SECRETS))
    for env_file in (secrets_only, ENV_EXAMPLE):
        done = docker_compose("config", env_file=env_file)
        assert done.returncode == 0, done.stderr
        env = {
            k: str(v)
            for k, v in yaml.safe_load(done.stdout)["services"]["airflow-worker"]["environment"].items()
        }
        # what the package gives with none of its variables set, in the image's AIRFLOW_HOME (a
        # default, the k8s tracking path, derives from it)
        image = {"AIRFLOW_HOME": env["AIRFLOW_HOME"]}
        for settings_class in _settings_classes():
            assert settings_class.from_env(env) == settings_class.from_env(image), (
                settings_class.__name__,
                env_file.name,
            )


def test_env_example_placeholders_are_usable_secrets():
    from cryptography.fernet import Fernet

    example = env_example()
    Fernet(example["AIRFLOW_FERNET_KEY"].encode())  # a key Airflow can encrypt with
    for name in ("MSSQL_SA_PASSWORD", "HISTORIAN_READER_PASSWORD"):
        value = example[name]  # SQL Server's policy: 8+ characters from 3 of the 4 classes
        classes = [r"[A-Z]", r"[a-z]", r"[0-9]", r"[^A-Za-z0-9]"]
        assert len(value) >= 8 and sum(bool(re.search(c, value)) for c in classes) >= 3, name
    for name in SECRETS:  # safe unescaped in URLs and JSON, and visibly a placeholder
        assert re.fullmatch(r"[A-Za-z0-9._~=-]+", example[name]), name
        assert "change-me" in example[name].lower() or name == "AIRFLOW_FERNET_KEY", name


# -- connections -----------------------------------------------------------------------------


def test_every_connection_parses_into_its_type(services, monkeypatch):
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend

    env = airflow_env(services)
    defined = {k[len("AIRFLOW_CONN_") :].lower(): v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    assert set(defined) == set(CONNECTIONS)
    for conn_id, value in defined.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
        conn = EnvironmentVariablesBackend().get_connection(conn_id)
        conn_type, service = CONNECTIONS[conn_id]
        assert conn is not None and conn.conn_type == conn_type, conn_id
        assert conn.host == service and service in services, conn_id
        for service_name in AIRFLOW_SERVICES:  # the same connections in every Airflow process
            assert services[service_name]["environment"][f"AIRFLOW_CONN_{conn_id.upper()}"] == value
    # the connection ids the DAGs use are the ones defined
    for variable in ("WONDERWARE_CONN_ID", "CLICKHOUSE_CONN_ID", "TEMPORAL_CONN_ID"):
        assert env[variable] in defined, variable


def test_connections_reach_the_services_as_the_hooks_read_them(services, monkeypatch):
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend

    from airflow_backfill_provider.hooks._wonderware_connection import (
        connection_url,
        describe_url,
        tls_settings,
    )
    from airflow_backfill_provider.temporal.connection import client_kwargs_from_connection

    example = env_example()
    for key, value in airflow_env(services).items():
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(key, value)
    get = EnvironmentVariablesBackend().get_connection

    ww = get("wonderware_default")
    url = connection_url(
        host=ww.host,
        port=ww.port,
        login=ww.login,
        password=ww.password,
        schema=ww.schema,
        extra=ww.extra_dejson,
    )
    assert (
        describe_url(url)
        == "mssql+pymssql://historian_reader:***@sqlserver:1433/Runtime?encryption=require&login_timeout=15"
    )
    # SQL Server's container has a self-signed certificate: mssql-python needs to be told to trust it
    assert tls_settings(ww.extra_dejson) == {"encrypt": "yes", "trust_server_certificate": True}
    assert url.password == example["HISTORIAN_READER_PASSWORD"]

    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    hook = ClickHouseBackfillHook("clickhouse_default")
    assert hook.chdb_path is None  # a server, not embedded ClickHouse
    assert hook.where == "ClickHouse at clickhouse:8123 (connection 'clickhouse_default')"
    ch = get("clickhouse_default")
    assert (ch.schema, ch.login, ch.password) == (
        example["CLICKHOUSE_DB"],
        example["CLICKHOUSE_USER"],
        example["CLICKHOUSE_PASSWORD"],
    )
    assert services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"] == ch.password

    temporal = get("temporal_default")
    kwargs = client_kwargs_from_connection(
        host=temporal.host, port=temporal.port, password=temporal.password, extra=temporal.extra_dejson
    )
    assert kwargs["target_host"] == "temporal:7233" and kwargs["namespace"] == "default"
    assert services["temporal"]["environment"]["DEFAULT_NAMESPACE"] == kwargs["namespace"]

    assert get("redis_default").extra_dejson == {"db": 1}  # the tag cache, apart from Celery's db 0
    from airflow_backfill_provider.hooks.airflow_api import AirflowApiHook

    assert AirflowApiHook("airflow_api_default").base_url == "http://airflow-apiserver:8080"
    api = get("airflow_api_default")
    assert (api.login, api.password) == (example["AIRFLOW_ADMIN_USERNAME"], example["AIRFLOW_ADMIN_PASSWORD"])
    assert airflow_env(services)["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"


# -- Airflow ---------------------------------------------------------------------------------


def test_dags_import_with_the_compose_environment(services, monkeypatch):
    """The DAG files parse with the environment every Airflow container gets (.env.example values).

    The ``AIRFLOW__*`` options configure the processes, not the DAG files, and point at hosts that
    exist only inside the stack, so they are checked on their own (below); the rest is applied.
    """
    from airflow.dag_processing.dagbag import DagBag

    env = airflow_env(services)
    for key, value in env.items():
        if not key.startswith("AIRFLOW__"):
            monkeypatch.setenv(key, value)
    mounts = services["airflow-scheduler"]["volumes"]
    dags_mount = next(m for m in mounts if str(m).split(":")[1] == "/opt/airflow/dags")
    source = Path(str(dags_mount).split(":")[0])
    assert source == ROOT / "dags"
    bag = DagBag(dag_folder=str(source))
    assert bag.import_errors == {}
    assert {"wonderware_backfill", "missing_workflow_backfill", "wonderware_sync"} <= set(bag.dag_ids)
    wonderware = bag.dags["wonderware_backfill"]
    assert wonderware.max_active_runs == int(env["WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS"])
    assert wonderware.catchup is False and wonderware.start_date is None  # safe by default
    fetch = wonderware.get_task("fetch_insert")
    assert fetch.partial_kwargs["wonderware_conn_id"] == "wonderware_default"
    assert fetch.partial_kwargs["clickhouse_conn_id"] == "clickhouse_default"
    assert bag.dags["missing_workflow_backfill"].has_task("settle")  # 1h, not switched off


def test_sync_with_retroactive_backfill_finds_its_connections_in_the_stack(services, monkeypatch):
    """With ``WONDERWARE_SYNC_RETROACTIVE`` on, wonderware_sync refuses to import unless the Airflow
    API and ClickHouse connections exist: the stack's do, and without the API one it names it."""
    from airflow.dag_processing.dagbag import DagBag

    for key, value in airflow_env(services).items():
        if not key.startswith("AIRFLOW__"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("WONDERWARE_SYNC_RETROACTIVE", "true")
    monkeypatch.setenv("WONDERWARE_SYNC_HISTORY_START", env_example()["HISTORIAN_SIM_START"])
    sync_file = str(ROOT / "dags" / "wonderware_sync.py")
    assert DagBag(dag_folder=sync_file).import_errors == {}
    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API_DEFAULT")
    errors = DagBag(dag_folder=sync_file).import_errors
    assert "connection 'airflow_api_default' (AIRFLOW_API_CONN_ID)" in "".join(errors.values())


def test_airflow_options_exist_in_airflow(services):
    """Every ``AIRFLOW__SECTION__KEY`` of Airflow's own sections names a real option (a typo would
    be ignored silently). ``[celery]`` belongs to the Celery provider, which the image ships."""
    import airflow

    spec = yaml.safe_load((Path(airflow.__file__).parent / "config_templates" / "config.yml").read_text())
    options = {
        k: v
        for k, v in airflow_env(services).items()
        if k.startswith("AIRFLOW__") and not k.startswith("AIRFLOW__CELERY__")
    }
    assert len(options) >= 10
    for key in options:
        section, option = key[len("AIRFLOW__") :].lower().split("__", 1)
        assert option in spec.get(section, {}).get("options", {}), key
    assert airflow_env(services)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert (
        airflow_env(services)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        == "http://airflow-apiserver:8080/execution/"
    )


def test_each_airflow_service_runs_its_component(services):
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    commands = {k: v if isinstance(v, str) else " ".join(v) for k, v in commands.items()}
    assert commands == {
        "airflow-init": "version",  # after the entrypoint's db migrate and admin user
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    init = services["airflow-init"]["environment"]
    assert init["_AIRFLOW_DB_MIGRATE"] == "true" and init["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert init["_AIRFLOW_WWW_USER_PASSWORD"] == env_example()["AIRFLOW_ADMIN_PASSWORD"]
    for name in AIRFLOW_SERVICES | {"historian-init"}:
        assert services[name]["image"] == env_example()["AIRFLOW_IMAGE_NAME"], name
        assert services[name]["build"]["dockerfile"] == "Dockerfile", name


def test_workers_scale(services):
    """``--scale airflow-worker=N`` needs no fixed container name and no host port."""
    for name, service in services.items():
        assert "container_name" not in service, name
    assert "ports" not in services["airflow-worker"]
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"  # warm shutdown


# -- health checks and start order -----------------------------------------------------------


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no" and "healthcheck" not in service, name
        elif name in NOT_CHECKED:
            assert not any(name in depends(s) for s in services.values()), f"something waits for {name}"
        else:
            check = service.get("healthcheck")
            assert check and check["test"] and not check.get("disable"), name
            assert service.get("restart") == "always", name


def test_conditions_match_what_each_dependency_offers(services):
    for name, service in services.items():
        for dependency, condition in depends(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if dependency in ONE_SHOT:
                assert condition == "service_completed_successfully", (name, dependency)
            else:
                assert condition == "service_healthy", (name, dependency)
                assert services[dependency].get("healthcheck"), (
                    f"{name} waits for {dependency}'s health check"
                )


def test_start_order(services):
    deps = {name: depends(service) for name, service in services.items()}
    for name in AIRFLOW_SERVICES:
        assert deps[name]["postgres"] == deps[name]["redis"] == "service_healthy", name
        if name != "airflow-init":
            assert deps[name]["airflow-init"] == "service_completed_successfully", name
    assert deps["airflow-worker"]["airflow-apiserver"] == "service_healthy"  # the execution API
    assert deps["historian-init"] == {"sqlserver": "service_healthy"}
    assert deps["temporal"] == {"postgres": "service_healthy"}
    assert deps["temporal-ui"] == {"temporal": "service_healthy"}
    # a start order exists (no cycle), and it puts migrations before every Airflow component
    order: list[str] = []
    while len(order) < len(deps):
        ready = sorted(n for n in deps if n not in order and set(deps[n]) <= set(order))
        assert ready, f"dependency cycle among {set(deps) - set(order)}"
        order += ready
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert order.index("airflow-init") < order.index(name)
    assert order.index("airflow-apiserver") < order.index("airflow-worker")


# -- the image and the historian init --------------------------------------------------------


def test_dockerfile_builds_on_the_airflow_the_project_runs():
    from importlib.metadata import version

    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG AIRFLOW_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}$", text, re.M)
    assert base == f"apache/airflow:{version('apache-airflow')}" == "apache/airflow:3.3.2"
    extras = set(re.search(r"^ARG PROVIDER_EXTRAS=(\S+)$", text, re.M).group(1).split(","))
    assert "simulator" in extras  # historian-init runs wonderware-simulator in this image
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in text  # pip may not move Airflow
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for copied in re.findall(r"^COPY --chown=\S+ (.+) \S+$", text, re.M):
        for path in copied.split():
            assert (ROOT / path).exists() and path not in ignored, path
    assert {".venv", ".env", ".git"} <= ignored


def test_historian_init_command_is_what_the_init_and_the_simulator_accept(services, monkeypatch):
    from airflow_backfill_provider.testing import simulator, sqlserver

    init = services["historian-init"]
    command, environment = init["command"], init["environment"]
    assert command[:3] == ["python", "-m", "airflow_backfill_provider.testing.sqlserver"]
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    seen = {}

    def simulate(url, config, **kwargs):  # no SQL Server here: record what the load would get
        seen.update(url=url, config=config, **kwargs)
        return simulator.SimulationSummary(url, "executemany", {}, {}, 0, 0, 0, None, None, 0.0)

    monkeypatch.setattr(sqlserver, "prepare", lambda **kwargs: seen.update(prepare=kwargs))
    monkeypatch.setattr(simulator, "simulate", simulate)
    assert sqlserver.main(command[3:]) == 0
    example = env_example()
    assert seen["prepare"]["host"] == "sqlserver" and seen["prepare"]["database"] == "Runtime"
    assert seen["prepare"]["reader_login"] == example["HISTORIAN_READER_LOGIN"]
    assert seen["prepare"]["reader_password"] == example["HISTORIAN_READER_PASSWORD"]
    assert seen["url"].startswith("mssql+pymssql://sa:") and seen["url"].endswith("@sqlserver:1433/Runtime")
    config = seen["config"]
    assert (config.start.isoformat(), config.end.isoformat()) == (
        "2025-01-01T00:00:00",
        "2025-01-08T00:00:00",
    )
    assert config.tags == int(example["HISTORIAN_SIM_TAGS"]) and config.hostile_tags
    assert seen["replace"] is True  # a requested reload loads the same rows instead of appending them
