"""What the deploy tests share: the stack's files, ``docker-compose`` and .env.example as read here.

No Docker engine runs on the test machines: Debian's ``docker-compose`` (1.29, installed by
scripts/system-deps.sh) resolves the file (``config``), which is as far as a check can go without one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
SCHEMA = Path(__file__).with_name("compose_spec.json")

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
ONE_SHOT = {"airflow-init", "historian-init"}
# Nothing waits for these, so a health check would gate nothing: the Temporal UI (its image's tools are
# not documented) and the log groomer (its one process is the loop; if it dies, the container exits
# and `restart: always` starts it again).
NOT_CHECKED = {"temporal-ui", "airflow-log-groomer"}
# The systems only some DAGs use: no Airflow component may wait for them, or one that fails to start
# leaves every DAG without that component.
SOURCE_AND_TARGET_SYSTEMS = {"sqlserver", "historian-init", "clickhouse", "temporal", "temporal-ui"}
# Every secret docker-compose.yaml reads; each must come from .env, with no fallback in the file.
SECRETS = {
    "POSTGRES_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "MSSQL_SA_PASSWORD",
    "HISTORIAN_READER_PASSWORD",
    "CLICKHOUSE_PASSWORD",
}
# Connection id -> (conn_type, service it points at)
CONNECTIONS = {
    "wonderware_default": ("wonderware", "sqlserver"),
    "clickhouse_default": ("clickhouse", "clickhouse"),
    "temporal_default": ("temporal", "temporal"),
    "redis_default": ("redis", "redis"),
    "airflow_api_default": ("airflowapi", "airflow-apiserver"),
}


def docker_compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "Debian's docker-compose is missing: run `make system-deps` (scripts/system-deps.sh)"
    # Only PATH from our environment: a secret exported in the shell must not fill a gap in the file.
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


def env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    )
    return {key: value for key, value in pairs}


def airflow_env(services) -> dict[str, str]:
    return {k: str(v) for k, v in services["airflow-scheduler"]["environment"].items()}


def depends(service: dict) -> dict[str, str]:
    """A service's ``depends_on`` as {dependency: condition}."""
    return {name: spec["condition"] for name, spec in (service.get("depends_on") or {}).items()}


_PROJECT_SCRIPT = """
import json, sys
from docker.errors import NotFound
from compose.config import config
from compose.config.environment import Environment
from compose.project import Project

directory, compose_file, env_file, profiles, names = sys.argv[1:6]


class Offline:
    # No engine: the project model asks only whether networks and volumes exist yet.
    api_version = _version = "1.41"

    def inspect_network(self, name):
        raise NotFound(name)

    def inspect_volume(self, name):
        raise NotFound(name)


environment = Environment.from_env_file(directory, env_file)
loaded = config.load(config.find(directory, [compose_file], environment))
project = Project.from_config(
    "stack", loaded, client=Offline(), enabled_profiles=[p for p in profiles.split(",") if p]
)
wanted = [n for n in names.split(",") if n] or None
print(json.dumps([s.name for s in project.get_services(wanted, include_deps=True)]))
"""


def services_started(
    *names: str, profiles: tuple[str, ...] = (), compose: Path = COMPOSE, env_file: Path = ENV_EXAMPLE
) -> set[str]:
    """The services ``docker compose up [names]`` (with ``--profile`` for each of ``profiles``) or
    ``docker compose run NAME`` starts, as Compose's own project model works them out: the named
    ones (all enabled ones if none) and their dependencies. A dependency on a service whose profile
    is off is an error there, as in Compose v2. Runs docker-compose's own Python (no engine needed)."""
    binary = shutil.which("docker-compose")
    assert binary, "Debian's docker-compose is missing: run `make system-deps` (scripts/system-deps.sh)"
    interpreter = Path(binary).read_text().splitlines()[0].removeprefix("#!").split()
    done = subprocess.run(
        [*interpreter, "-c", _PROJECT_SCRIPT, str(compose.parent), str(compose), str(env_file)]
        + [",".join(profiles), ",".join(names)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))
