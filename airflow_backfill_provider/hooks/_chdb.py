"""Embedded ClickHouse (chdb) on a data directory: its connection type, the cross-process lock, and
errors that say which directory failed and why (the engine's own message names neither)."""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from airflow_backfill_provider.exceptions import BackfillProviderError, ConfigurationError

# The connection type of embedded ClickHouse (no underscore: Airflow's connection test round-trips
# the connection through a URI, whose scheme cannot hold one).
CHDB_CONN_TYPE = "chdb"

# How long a task waits for the embedded database before giving up. Chunk writes hold the lock for
# seconds, so ten minutes means something is stuck, not busy.
DEFAULT_LOCK_TIMEOUT = 600.0


class ClickHouseEngineError(BackfillProviderError):
    """ClickHouse failed; the message names the connection, the server or data directory, and why."""


@contextmanager
def file_lock(path: str, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[float]:
    """Hold an exclusive ``flock`` on ``path``; yield the seconds spent waiting for it."""
    started = time.monotonic()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ConfigurationError(
            f"Embedded ClickHouse cannot create its lock file {path!r}: {os_cause(err)}. Give the user "
            f"running the tasks (uid {os.geteuid()}) write access to {os.path.dirname(path)!r}, or "
            "point chdb_path elsewhere."
        ) from err
    try:
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > timeout:
                    raise TimeoutError(
                        f"Embedded ClickHouse at {path[:-5]!r} stayed locked by another process for "
                        f"{timeout:.0f}s. Look for a stuck task, or use a ClickHouse server for heavy "
                        "parallel loads."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def chdb_path_from_extra(extra: dict) -> str | None:
    """The data directory in a connection's extra (forms of older UIs prefix the field's name)."""
    for key in ("chdb_path", f"extra__{CHDB_CONN_TYPE}__chdb_path"):
        if extra.get(key):
            return str(extra[key]).strip()
    return None


def directory_problem(path: str) -> str | None:
    """Why this process cannot use ``path`` as a data directory, in words; ``None`` if it can.

    Writes and removes a probe file, then looks for entries it may not read or write (a directory
    another user's engine created), so the answer holds for root without CAP_DAC_OVERRIDE too.
    """
    if not os.path.isdir(path):
        return "it is not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".abp-write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return os_cause(err)
    for name in sorted(os.listdir(path))[:1000]:
        entry = os.path.join(path, name)
        if not os.access(entry, os.R_OK | os.W_OK):
            return f"permission denied on {entry!r}"
    return None


def os_cause(err: OSError) -> str:
    """``permission denied``, ``read-only file system``...: the cause of an OSError in words."""
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return os.strerror(err.errno).lower() if err.errno else str(err)


def engine_errors() -> tuple[type[BaseException], ...]:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    return (ClickHouseError,)


def engine_error(err: BaseException, where: str) -> ClickHouseEngineError:
    """The engine's error as a :class:`ClickHouseEngineError` naming ``where``; a denied permission
    is said as such, whatever the engine's code for it."""
    text = " ".join(str(err).split())
    lines = [line for line in str(err).splitlines() if line.strip()]
    first = lines[0] if lines else type(err).__name__
    cause = "permission denied: " if "permission denied" in text.lower() else ""
    return ClickHouseEngineError(f"{where}: {cause}{first[:500]}")
