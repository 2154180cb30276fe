"""How fast each driver reads from the TDS endpoint in replay mode (the endpoint is not the limit).

Run: ``.venv/bin/python -m tests.support.tds.bench_replay [rows]``. One result of (datetime2,
nvarchar, float, int) rows is pre-encoded once, then every driver reads it whole, into Arrow where
the driver can (mssql-python ``cursor.arrow()``, arrow-odbc over FreeTDS ODBC and over the ODBC
Driver 18 bundled with mssql-python) and with ``fetchall()`` for pymssql.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .backend import ColumnSpec, ResultSet
from .replay import ReplayBackend
from .server import TdsServer
from .tokens import encode_result_chunks

FREETDS_ODBC = "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so"
QUERY = "SELECT DateTime, TagName, Value, Quality FROM bench"
COLUMNS = [
    ColumnSpec("DateTime", "datetime2"),
    ColumnSpec("TagName", "nvarchar", 256),
    ColumnSpec("Value", "float"),
    ColumnSpec("Quality", "int"),
]


def _rows(n: int):
    t0 = dt.datetime(2024, 1, 1)
    step = dt.timedelta(milliseconds=250)
    for i in range(n):
        yield (t0 + i * step, f"Plant.Area{i % 10}.Tag{i % 1000}", i * 0.5, 192)


def _msodbc18() -> str | None:
    try:
        import mssql_python_odbc
    except ImportError:
        return None
    root = Path(mssql_python_odbc.__file__).parent / "libs" / "linux" / "debian_ubuntu" / "x86_64" / "lib"
    found = sorted(root.glob("libmsodbcsql-18*.so*"))
    return str(found[0]) if found else None


def _readers(port: int) -> dict[str, Callable[[], int]]:
    """Driver name -> a function that reads the whole result and returns its row count."""
    out: dict[str, Callable[[], int]] = {}

    def pymssql_fetchall() -> int:
        import pymssql

        with pymssql.connect(
            server="127.0.0.1", port=port, user="bench", password="x", database="Runtime"
        ) as conn:
            cur = conn.cursor()
            cur.execute(QUERY)
            return len(cur.fetchall())

    def mssql_python_arrow() -> int:
        import mssql_python

        cs = f"Server=127.0.0.1,{port};Database=Runtime;UID=bench;PWD=x;Encrypt=no;Packet Size=32767"
        conn = mssql_python.connect(cs, autocommit=True)
        try:
            cur = conn.cursor()
            cur.execute(QUERY)
            return cur.arrow(batch_size=65536).num_rows
        finally:
            conn.close()

    def arrow_odbc_reader(cs: str) -> Callable[[], int]:
        def read() -> int:
            import arrow_odbc

            reader = arrow_odbc.read_arrow_batches_from_odbc(QUERY, cs, batch_size=65536, max_text_size=256)
            return sum(batch.num_rows for batch in reader)

        return read

    out["pymssql fetchall"] = pymssql_fetchall
    out["mssql-python arrow"] = mssql_python_arrow
    if Path(FREETDS_ODBC).exists():
        cs = f"DRIVER={FREETDS_ODBC};SERVER=127.0.0.1;PORT={port};UID=bench;PWD=x;DATABASE=Runtime;TDS_Version=7.4"
        out["arrow-odbc FreeTDS"] = arrow_odbc_reader(cs)
    driver = _msodbc18()
    if driver:
        cs = f"DRIVER={driver};SERVER=127.0.0.1,{port};UID=bench;PWD=x;DATABASE=Runtime;Encrypt=no;Packet Size=32767"
        out["arrow-odbc ODBC18"] = arrow_odbc_reader(cs)
    return out


def measure(rows: int = 1_000_000) -> dict[str, float]:
    """Pre-encode ``rows`` rows, serve them in replay mode, and return (and print) rows/s per driver."""
    started = time.perf_counter()
    chunks = list(encode_result_chunks(ResultSet(COLUMNS, _rows(rows))))
    size = sum(len(c) for c in chunks)
    encode_s = time.perf_counter() - started
    _say(f"pre-encoded {rows:,} rows, {size / 1e6:.1f} MB, in {encode_s:.1f} s")
    results: dict[str, float] = {}
    with TdsServer(ReplayBackend(chunks, match="from bench")) as server:
        for name, read in _readers(server.port).items():
            try:
                t = time.perf_counter()
                got = read()
                elapsed = time.perf_counter() - t
            except Exception as exc:  # a missing or failing driver should not hide the others
                _say(f"{name:22s} failed: {exc!r}")
                continue
            if got != rows:
                _say(f"{name:22s} read {got} rows, expected {rows}")
                continue
            results[name] = rows / elapsed
            _say(
                f"{name:22s} {rows / elapsed:>12,.0f} rows/s  ({elapsed:.2f} s, {size / elapsed / 1e6:.0f} MB/s)"
            )
    return results


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
