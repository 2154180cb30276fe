"""Sweeping the spool folders of killed tries: real processes, real folders, never a live one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from airflow_backfill_provider.historian.spool import SPOOL_PREFIX, _host, make_spool_dir, sweep_spool


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def age(path, seconds: float) -> None:
    """Make ``path`` and what is in it look untouched for ``seconds``."""
    then = time.time() - seconds
    for entry in os.scandir(path):
        os.utime(entry.path, (then, then))
    os.utime(path, (then, then))


def folder(tmp_path, name: str, *, files: int = 1, idle: float = 0.0):
    path = tmp_path / name
    path.mkdir()
    for i in range(files):
        (path / f"spool-{i:05d}.arrows").write_bytes(b"x" * 1024)
    age(path, idle)
    return path


def test_a_spool_folder_names_its_host_and_process(tmp_path):
    path = make_spool_dir(str(tmp_path))
    assert os.path.basename(path).startswith(f"{SPOOL_PREFIX}{_host()}-{os.getpid()}-")
    assert os.listdir(path) == []


def test_sweep_removes_what_a_killed_try_left_and_nothing_else(tmp_path):
    host = _host()
    killed = folder(tmp_path, f"{SPOOL_PREFIX}{host}-{dead_pid()}-abc123", files=3, idle=3600)
    live_here = folder(tmp_path, f"{SPOOL_PREFIX}{host}-{os.getpid()}-def456", idle=3600)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live_other = folder(tmp_path, f"{SPOOL_PREFIX}{host}-{sleeper.pid}-ghi789", idle=3600)
        fresh_dead = folder(tmp_path, f"{SPOOL_PREFIX}{host}-{dead_pid()}-jkl012", idle=5)
        other_host = folder(tmp_path, f"{SPOOL_PREFIX}elsewhere.example-{dead_pid()}-mno345", idle=3600)
        unrelated = folder(tmp_path, "my-own-folder", idle=10 * 86400)

        removed = sweep_spool(str(tmp_path))

        assert removed == [str(killed)]
        assert not killed.exists()
        # live processes (this one, another), a dead try written to seconds ago, another host's
        # folder and anything not ours stay
        for kept in (live_here, live_other, fresh_dead, other_host, unrelated):
            assert kept.exists(), kept
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
    # once the other process is killed, its folder goes too
    assert sweep_spool(str(tmp_path)) == [str(live_other)]


def test_folders_of_earlier_builds_go_after_a_day_idle(tmp_path):
    old = folder(tmp_path, f"{SPOOL_PREFIX}k3j4h5g6", idle=2 * 86400)
    recent = folder(tmp_path, f"{SPOOL_PREFIX}a1b2c3d4", idle=3600)
    assert sweep_spool(str(tmp_path)) == [str(old)]
    assert recent.exists()


def test_sweep_of_a_missing_directory_is_a_no_op(tmp_path):
    assert sweep_spool(str(tmp_path / "absent")) == []


def test_a_killed_transfer_is_swept_by_the_next_one(tmp_path):
    """A chunk process killed mid-read (SIGKILL) leaves its spool; the next chunk removes it."""
    script = (
        "import os, sys, time\n"
        "from airflow_backfill_provider.historian.spool import make_spool_dir\n"
        "path = make_spool_dir(sys.argv[1])\n"
        "open(os.path.join(path, 'spool-00000.arrows'), 'wb').write(b'x' * 4096)\n"
        "print(path, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    path = proc.stdout.readline().strip()
    assert os.path.isdir(path)
    assert sweep_spool(str(tmp_path), min_age=0) == []  # alive: kept
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert os.path.isdir(path)  # a killed process cleans nothing up
    assert sweep_spool(str(tmp_path), min_age=0) == [path]
    assert not os.path.exists(path)
