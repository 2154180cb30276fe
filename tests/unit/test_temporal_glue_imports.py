"""The Temporal SDK glue stays Airflow-free, and loads the SDK only when a call needs it."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import airflow_backfill_provider.temporal as glue


@pytest.mark.parametrize("module", [m.name for m in pkgutil.iter_modules(glue.__path__)])
def test_glue_imports_neither_airflow_nor_the_sdk(module):
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module('airflow_backfill_provider.temporal.{module}')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert not [m for m in loaded if m == "airflow" or m.startswith("airflow.")]
    assert "temporalio" not in loaded  # imported lazily: DAG parsing does not pay for the SDK
    assert not [m for m in loaded if m.startswith("airflow_backfill_provider.historian")]
