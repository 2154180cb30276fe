"""Running the stack over time (issue 17, items 3 to 7): what `up` starts and restarts, who can reach
it, stopping workers, logs, the image's dependencies, PostgreSQL's connections, Temporal's
retention, and the secrets, as docs/deployment.md tells a user to set and change them.

Compose's own project model (docker-compose 1.29's Python, no engine) answers what `up` and `run`
start; the rest reads the file as ``docker-compose config`` resolves it.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.deploy.compose_stack import (
    AIRFLOW_SERVICES,
    DEPLOYMENT_DOC,
    DOCKERFILE,
    ENV_EXAMPLE,
    SECRETS,
    SOURCE_AND_TARGET_SYSTEMS,
    depends,
    docker_compose,
    env_example,
    services_started,
)

# -- what `docker compose up` starts (item 3) ------------------------------------------------------


def test_up_and_up_scale_never_run_historian_init():
    """Compose v2 re-runs a finished one-shot service on every `up`, `up --scale` included: the
    historian load must not be among what `up` starts, or each `up` reloads TagRef/History under the
    backfills reading them."""
    assert "historian-init" not in services_started()
    assert "historian-init" not in services_started("airflow-worker")


def test_historian_init_runs_on_request_with_what_it_needs(services):
    assert services_started("historian-init") == {"historian-init", "sqlserver"}
    assert services["historian-init"]["profiles"] == ["historian-init"]
    assert services["historian-init"]["restart"] == "no"
    # --replace (drop, recreate, reload the same rows) only ever runs when someone asked for it
    assert "--replace" in services["historian-init"]["command"]


def test_no_airflow_component_waits_for_a_source_or_target_system(services):
    """SQL Server, ClickHouse and Temporal serve some DAGs each: one that fails to start must leave
    the workers, the triggerer and the rest up for the others."""
    for name in AIRFLOW_SERVICES | {"airflow-log-groomer"}:
        assert not set(depends(services[name])) & SOURCE_AND_TARGET_SYSTEMS, name
        assert not services_started(name) & SOURCE_AND_TARGET_SYSTEMS, name
    assert not any("historian-init" in depends(service) for service in services.values())


def test_deployment_doc_loads_the_historian_by_request_only():
    doc = DEPLOYMENT_DOC.read_text()
    assert "docker compose run --rm historian-init" in doc
    assert "--profile historian-init up" not in doc  # that would reload on every later `up`
    assert "EmptyReadError" in doc and "allow_empty" in doc  # what a chunk does during a reload


# -- who can reach it (item 5) -------------------------------------------------------------------


def _published(services: dict) -> dict[str, list[str]]:
    return {name: [str(p) for p in s.get("ports", [])] for name, s in services.items() if s.get("ports")}


def test_published_ports_listen_on_loopback_by_default(raw, services):
    published = _published(services)
    assert {"airflow-apiserver", "clickhouse", "sqlserver", "temporal", "temporal-ui"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), (name, port)
    for name, ports in _published(raw["services"]).items():
        for port in ports:  # one variable moves them all, and nothing is published another way
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
        assert raw["services"][name].get("network_mode") != "host", name
    assert env_example()["BIND_ADDRESS"] == "127.0.0.1"


def test_bind_address_moves_every_published_port(tmp_path):
    env_file = tmp_path / "lan.env"
    env_file.write_text(ENV_EXAMPLE.read_text().replace("BIND_ADDRESS=127.0.0.1", "BIND_ADDRESS=10.1.2.3"))
    done = docker_compose("config", env_file=env_file)
    assert done.returncode == 0, done.stderr
    published = _published(yaml.safe_load(done.stdout)["services"])
    assert all(port.startswith("10.1.2.3:") for ports in published.values() for port in ports), published
    doc = DEPLOYMENT_DOC.read_text()
    assert "BIND_ADDRESS" in doc and "no authentication" in doc  # how to expose it, and the risk


# -- the rest of the stack (item 6) --------------------------------------------------------------


def test_sql_server_runs_as_the_only_platform_its_image_has(services):
    assert services["sqlserver"]["platform"] == "linux/amd64"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def compose_duration(text: str) -> timedelta:
    """A Compose duration (``1m30s``, ``15m``, ``720h``: Go's format, without days)."""
    parts = _DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def test_compose_duration_reads_go_durations():
    assert compose_duration("15m") == timedelta(minutes=15)
    assert compose_duration("1h30m") == timedelta(minutes=90)
    assert compose_duration("720h") == timedelta(days=30)
    with pytest.raises(AssertionError):
        compose_duration("30d")  # Go's durations have no days


# docs/wonderware-backfill.md sizes a chunk to "a few minutes": ten is the most that phrase covers.
LONGEST_DOCUMENTED_CHUNK = timedelta(minutes=10)


def test_a_stopping_worker_outlasts_a_chunk(services):
    """Scaling workers down stops some: Celery's warm shutdown lets their running chunks finish, but
    only within the stop grace period (Compose's default: 10 s)."""
    worker = services["airflow-worker"]
    grace = compose_duration(worker["stop_grace_period"])
    assert grace > LONGEST_DOCUMENTED_CHUNK
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # the signal reaches Celery, not its tasks
    assert env_example()["AIRFLOW_WORKER_STOP_GRACE_PERIOD"] == worker["stop_grace_period"]
    assert f"`stop_grace_period` of {worker['stop_grace_period']}" in DEPLOYMENT_DOC.read_text()


def test_a_log_groomer_trims_the_logs_airflow_writes(services):
    """The official image's /clean-logs (the Helm chart's log groomer) on the volume every Airflow
    component writes its logs to, at the folder Airflow writes them in."""
    groomer = services["airflow-log-groomer"]
    assert groomer["command"] == ["bash", "/clean-logs"]
    assert groomer["image"] == services["airflow-scheduler"]["image"]
    env = groomer["environment"]
    assert int(env["AIRFLOW__LOG_RETENTION_DAYS"]) >= 1
    assert env["CONNECTION_CHECK_MAX_COUNT"] == "0"  # no wait for the metadata database
    assert groomer["restart"] == "always" and not groomer.get("depends_on")
    # Airflow writes to [logging] base_log_folder, left at its default, {AIRFLOW_HOME}/logs
    assert airflow_option("logging", "base_log_folder") == "{AIRFLOW_HOME}/logs"
    groomed = f"{env['AIRFLOW_HOME']}/logs"
    assert f"airflow-logs:{groomed}:rw" in groomer["volumes"]
    for name in AIRFLOW_SERVICES:
        environment = services[name]["environment"]
        assert "AIRFLOW__LOGGING__BASE_LOG_FOLDER" not in environment, name
        assert f"{environment['AIRFLOW_HOME']}/logs" == groomed, name
        assert f"airflow-logs:{groomed}:rw" in services[name]["volumes"], name


def airflow_option(section: str, option: str) -> str:
    """The default of an Airflow option, from the config.yml of the Airflow the image is built on."""
    import airflow

    spec = yaml.safe_load((Path(airflow.__file__).parent / "config_templates" / "config.yml").read_text())
    return spec[section]["options"][option]["default"]


def _run_dockerfile_pip_step(tmp_path, pip_fails: str = "", **env: str) -> tuple[int, list[list[str]]]:
    """Run the Dockerfile's pip RUN step in bash, with the official image's SHELL options, a HOME and
    AIRFLOW_VERSION as the image sets them, the build's ARGs, and a ``pip`` that records its calls
    (and fails the one named by ``pip_fails``)."""
    text = DOCKERFILE.read_text()
    runs = [" ".join(m.split("\\\n")) for m in re.findall(r"^RUN ((?:.*\\\n)*.*)$", text, re.M)]
    (step,) = [run for run in runs if "pip install" in run]
    args = dict(re.findall(r"^ARG (\w+)=(.*)$", text.split("FROM", 1)[1], re.M))
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir(parents=True)
    pip = bin_dir / "pip"
    pip.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.exit(1 if sys.argv[1:2] == [{pip_fails!r}] else 0)\n"
    )
    pip.chmod(pip.stat().st_mode | stat.S_IEXEC)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": "/home/airflow",
        "AIRFLOW_VERSION": "3.3.2",
        **args,
        **env,
    }
    shell = ["bash", "-o", "pipefail", "-o", "errexit", "-o", "nounset", "-c"]  # the image's SHELL
    done = subprocess.run([*shell, step], env=environment, capture_output=True, text=True, timeout=30)
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return done.returncode, recorded


def test_dockerfile_installs_within_the_image_constraints_then_checks(tmp_path):
    code, calls = _run_dockerfile_pip_step(tmp_path)
    assert code == 0
    install, check = calls
    assert install[0] == "install"
    assert install[install.index("--constraint") + 1] == "/home/airflow/constraints.txt"
    assert "apache-airflow==3.3.2" in install
    assert any(a.startswith("/opt/airflow/src/airflow-backfill-provider[") for a in install)
    assert check == ["check"]


def test_dockerfile_constraints_can_be_chosen_and_a_broken_install_fails_the_build(tmp_path):
    url = "https://example.invalid/constraints-3.12.txt"
    code, calls = _run_dockerfile_pip_step(tmp_path / "a", AIRFLOW_CONSTRAINTS=url)
    assert code == 0 and calls[0][calls[0].index("--constraint") + 1] == url
    code, calls = _run_dockerfile_pip_step(tmp_path / "b", pip_fails="check")
    assert code != 0 and calls[-1] == ["check"]
    code, calls = _run_dockerfile_pip_step(tmp_path / "c", pip_fails="install")
    assert code != 0 and calls == [calls[0]] and calls[0][0] == "install"  # no check after it


def postgres_connections_needed(workers: int, concurrency: int) -> int:
    """An estimate of the connections Airflow and Temporal open on the stack's PostgreSQL.

    Airflow: a SQLAlchemy pool (pool size + overflow, Airflow's defaults) in each of the api-server,
    scheduler, dag-processor, triggerer and airflow-init; Celery's database result backend, one
    connection per worker process (concurrency + the main process). Temporal (auto-setup): a default
    store pool of 20 and a visibility pool of 10 in each of its four services.
    """
    pool = int(airflow_option("database", "sql_alchemy_pool_size"))
    pool += int(airflow_option("database", "sql_alchemy_max_overflow"))
    return 5 * pool + workers * (concurrency + 1) + 4 * (20 + 10)


def test_postgres_takes_the_connections_of_airflow_and_temporal(services):
    command = services["postgres"]["command"]
    settings = dict(a.split("=", 1) for a in command[command.index("postgres") + 1 :] if "=" in a)
    limit = int(settings["max_connections"])
    assert limit > 100  # PostgreSQL's default, which the old stack ran with
    concurrency = int(env_example()["AIRFLOW_WORKER_CONCURRENCY"])
    assert limit >= postgres_connections_needed(workers=20, concurrency=concurrency)
    assert "about 20 workers" in DEPLOYMENT_DOC.read_text()


# -- Temporal (item 7) ---------------------------------------------------------------------------


def test_temporal_keeps_closed_workflows_for_30_days(services):
    """auto-setup creates the namespace with DEFAULT_NAMESPACE_RETENTION (its default: 24h); after the
    retention, closed workflows vanish and missing_workflow_backfill would take them for missing."""
    retention = services["temporal"]["environment"]["DEFAULT_NAMESPACE_RETENTION"]
    assert compose_duration(retention) >= timedelta(days=30)
    assert env_example()["TEMPORAL_NAMESPACE_RETENTION"] == retention
    assert "temporal operator namespace update" in DEPLOYMENT_DOC.read_text()  # for an existing one


# -- secrets (item 4) and the commands docs/deployment.md gives ------------------------------------


def _section(doc: str, title: str) -> str:
    start = doc.index(f"\n## {title}\n")
    end = doc.find("\n## ", start + 1)
    return doc[start : end if end > 0 else None]


def test_deployment_doc_says_to_set_secrets_first_and_how_to_change_each():
    doc = DEPLOYMENT_DOC.read_text()
    assert "Set the secrets before the first `docker compose up`." in doc
    rows = [line for line in _section(doc, "Changing a secret after the first start").splitlines()]
    named = {name for line in rows if line.startswith("| `") for name in re.findall(r"`([A-Z_]+)`", line)}
    assert named == SECRETS
    for volume_secret in ("POSTGRES_PASSWORD", "MSSQL_SA_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"):
        (row,) = [line for line in rows if line.startswith(f"| `{volume_secret}`")]
        assert "docker compose exec" in row, volume_secret  # .env alone does not change it


def _doc_command(doc: str, marker: str) -> str:
    (line,) = [line for line in doc.splitlines() if line.startswith("python3 -c") and marker in line]
    return line


def test_secret_commands_need_only_the_standard_library():
    """The Fernet key and JWT secret commands run on a bare Python (``-I -S``: no site-packages, so no
    ``cryptography``) and print a key Airflow accepts and a secret long enough for HS512."""
    from cryptography.fernet import Fernet

    doc = DEPLOYMENT_DOC.read_text()
    for marker, check in (
        ("urlsafe_b64encode", lambda out: Fernet(out.encode())),
        ("token_urlsafe", lambda out: _sign_hs512(out)),
    ):
        command = _doc_command(doc, marker)
        code = re.fullmatch(r'python3 -c "(.*)"', command).group(1)
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, (command, done.stderr)
        check(done.stdout.strip())


def _sign_hs512(secret: str) -> None:
    """Sign as Airflow does with a jwt_secret (HS512), refusing a key PyJWT calls too short."""
    import jwt

    jwt.PyJWS(options={"enforce_minimum_key_length": True}).encode(b"{}", secret, algorithm="HS512")


def test_env_example_jwt_secret_is_long_enough_for_hs512():
    _sign_hs512(env_example()["AIRFLOW_JWT_SECRET"])
    with pytest.raises(Exception, match="below the minimum recommended length of 64 bytes"):
        _sign_hs512("change-me-jwt-secret")  # the placeholder it replaced


def test_deployment_doc_commands_name_real_services_and_show_exited_ones(services):
    doc = DEPLOYMENT_DOC.read_text()
    for sub, name in re.findall(r"docker compose (exec|run --rm|logs|up -d) ([a-z][a-z-]+)", doc):
        assert name in services, f"docker compose {sub} {name}"
    assert re.findall(r"docker compose ps\b(?! -a)", doc) == []  # one-shot services show only with -a
    assert "docker compose ps -a" in doc


def test_memory_figure_is_the_documented_needs_plus_a_stated_margin():
    doc = DEPLOYMENT_DOC.read_text()
    needs = [int(n) for n in re.findall(r"^\| [^|]+ \| (\d+) GB:", doc, re.M)]
    (total,) = [int(n) for n in re.findall(r"^\| documented total \| (\d+) GB \|", doc, re.M)]
    assert needs and sum(needs) == total
    planned, margin = re.search(r"\*\*at least (\d+) GB\*\* .*?and (\d+) GB of margin", doc, re.S).groups()
    assert int(planned) == total + int(margin)
    assert "estimate" in doc[doc.index("| documented need |") - 400 : doc.index("| documented need |")]
