"""The layering rules of docs/architecture.md, checked in fresh interpreters.

Each check imports one module in a new process (so nothing imported by other tests leaks in) and
lists the package modules it pulled in.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import airflow_backfill_provider

CORE_PACKAGES = ("historian", "workflows", "kubernetes")
CORE_MODULES = ("utils", "exceptions", "resilience")


def _imported_by(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _core_modules() -> list[str]:
    names = [f"airflow_backfill_provider.{m}" for m in CORE_MODULES]
    for pkg in CORE_PACKAGES:
        path = [f"{airflow_backfill_provider.__path__[0]}/{pkg}"]
        names += [f"airflow_backfill_provider.{pkg}.{m.name}" for m in pkgutil.iter_modules(path)]
    return names


@pytest.mark.parametrize("module", _core_modules())
def test_pure_core_imports_no_airflow(module):
    airflow = [m for m in _imported_by(module) if m == "airflow" or m.startswith("airflow.")]
    assert not airflow, f"{module} imports Airflow: {airflow[:5]}"


@pytest.mark.parametrize("module", _core_modules())
def test_core_domains_do_not_import_each_other(module):
    own = module.split(".")[1]
    others = [f"airflow_backfill_provider.{p}" for p in CORE_PACKAGES if p != own]
    leaked = [m for m in _imported_by(module) if any(m.startswith(o) for o in others)]
    assert not leaked, f"{module} imports another domain: {leaked}"


def test_temporal_hook_does_not_load_the_historian():
    loaded = _imported_by("airflow_backfill_provider.hooks.temporal")
    leaked = [m for m in loaded if m.startswith("airflow_backfill_provider.historian")]
    assert not leaked, leaked


@pytest.mark.parametrize(
    "module",
    [
        "airflow_backfill_provider.hooks.wonderware",
        "airflow_backfill_provider.hooks.clickhouse",
        "airflow_backfill_provider.operators.wonderware",
    ],
)
def test_runtime_does_not_need_the_simulator(module):
    loaded = _imported_by(module)
    assert not [m for m in loaded if m.startswith("airflow_backfill_provider.testing")]
