"""numpy is the simulator's (the ``[simulator]`` extra): the runtime must import without it.

One fresh interpreter imports every hook, operator, sensor and trigger module and parses every DAG
file, then lists what it loaded.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import airflow_backfill_provider

RUNTIME_PACKAGES = ("hooks", "operators", "sensors", "triggers")
DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

_PROBE = """
import importlib, json, runpy, sys
for target in sys.argv[1:]:
    runpy.run_path(target) if target.endswith(".py") else importlib.import_module(target)
print(json.dumps(sorted(sys.modules)))
"""


def _runtime_targets() -> list[str]:
    targets = []
    for pkg in RUNTIME_PACKAGES:
        path = [f"{airflow_backfill_provider.__path__[0]}/{pkg}"]
        targets += [f"airflow_backfill_provider.{pkg}.{m.name}" for m in pkgutil.iter_modules(path)]
    return targets + sorted(str(p) for p in DAGS_FOLDER.glob("*.py"))


def test_runtime_and_dags_import_neither_numpy_nor_the_testing_tools():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *_runtime_targets()], capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if m == "numpy" or m.startswith("numpy.")]
    assert not [m for m in loaded if m.startswith("airflow_backfill_provider.testing")]
