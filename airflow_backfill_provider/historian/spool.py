"""Spool folders of chunks in the temp directory: made per try, and swept once their try is dead.

A chunk's read phase writes Arrow files into a folder of its own (see :mod:`.transfer`), removed when
the chunk ends. A try that is killed (OOM, SIGKILL, a lost worker) cannot remove it, so every new
chunk first sweeps the folders whose process is gone. No Airflow import.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import time

log = logging.getLogger(__name__)

SPOOL_PREFIX = "wonderware-chunk-"
# A spool folder is named after its host and process, so a later chunk can tell a killed try's
# leftovers (process gone) from a live chunk's folder. Hosts sharing a spool volume each sweep
# only their own folders; pids of other hosts mean nothing here.
_OWNED = re.compile(rf"^{SPOOL_PREFIX}(?P<host>[A-Za-z0-9._-]+)-(?P<pid>\d+)-[^-]+$")
# Never sweep a folder written to this recently: a guard against pid reuse and clock skew.
SWEEP_MIN_AGE_SECONDS = 600.0
# Folders of earlier builds carry no owner: swept once they have been idle this long.
SWEEP_UNOWNED_AGE_SECONDS = 24 * 3600.0


def make_spool_dir(spool_dir: str | None = None) -> str:
    """A new, empty spool folder in ``spool_dir`` (default: the temp dir), named after its owner."""
    return tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{_host()}-{os.getpid()}-", dir=spool_dir)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _idle_seconds(path: str, now: float) -> float:
    """Seconds since anything in ``path`` (the folder or a file in it) was last written."""
    latest = os.stat(path).st_mtime
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                latest = max(latest, entry.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:  # removed while we looked
                continue
    return now - latest


def sweep_spool(
    spool_dir: str | None = None,
    *,
    min_age: float = SWEEP_MIN_AGE_SECONDS,
    unowned_age: float = SWEEP_UNOWNED_AGE_SECONDS,
) -> list[str]:
    """Remove the spool folders that killed tries left in ``spool_dir`` (default: the temp dir).

    A folder goes when it belongs to this host, its process is gone and nothing in it changed for
    ``min_age`` seconds; a folder with no owner in its name (earlier builds) after ``unowned_age``.
    A live chunk's folder, of this process or another, is never touched. Returns the removed paths.
    """
    directory = spool_dir or tempfile.gettempdir()
    host, now, removed = _host(), time.time(), []
    try:
        names = [n for n in os.listdir(directory) if n.startswith(SPOOL_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        owned = _OWNED.match(name)
        try:
            if owned:
                if owned["host"] != host or _alive(int(owned["pid"])) or _idle_seconds(path, now) < min_age:
                    continue
            elif _idle_seconds(path, now) < unowned_age:
                continue
        except OSError:  # gone already, or not a folder
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
    if removed:
        log.info("Removed %d spool folder(s) left by killed tries: %s", len(removed), ", ".join(removed))
    return removed
