"""Fixtures of the deploy tests: docker-compose.yaml as written and as ``docker-compose config``
resolves it with .env.example."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.compose_stack import COMPOSE, docker_compose


@pytest.fixture(scope="session")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="session")
def resolved() -> dict:
    """``docker-compose config``: anchors merged, variables interpolated with .env.example."""
    done = docker_compose("config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="session")
def services(resolved) -> dict[str, dict]:
    return resolved["services"]
