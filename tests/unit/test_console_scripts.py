"""Every console command the package installs answers ``--help``: exit 0 and a usage text.

The commands are read from the installed distribution's entry points, so a command added to
setup.py is checked without touching this test. ``wonderware-simulator --help`` once crashed on a
``%`` in a help string (argparse %-formats help texts).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

SCRIPTS = sorted(
    ep.name for ep in distribution("airflow-backfill-provider").entry_points if ep.group == "console_scripts"
)


def test_the_package_installs_console_commands():
    assert "wonderware-simulator" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_works(name):
    command = Path(sys.executable).with_name(name)
    assert command.exists(), f"{name} is declared in setup.py but not installed at {command}"
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name} --help exited {result.returncode}:\n{result.stderr[-2000:]}"
    assert result.stdout.startswith(f"usage: {name}"), result.stdout[:500]
    options = [line for line in result.stdout.splitlines() if line.strip().startswith("--")]
    assert options, f"{name} --help lists no options:\n{result.stdout}"
