"""The tests' ClickHouse server (ClickHouse's HTTP interface over the embedded engine) speaks what it
claims: the formats and compression clickhouse-connect uses, sessions, settings per query, the
``X-ClickHouse-*`` headers and ClickHouse's exception codes. The hook's tests rely on all of it."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pyarrow as pa
import pytest


def post(endpoint, params: dict, body: bytes = b"", headers: dict | None = None, password=None):
    """A raw HTTP request: (status, headers, body)."""
    auth = base64.b64encode(f"{endpoint.user}:{password or endpoint.password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{endpoint.host}:{endpoint.port}/?{urlencode(params)}",
        data=body,
        method="POST",
        headers={"Authorization": f"Basic {auth}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_formats_compression_and_headers(clickhouse_server):
    with clickhouse_server.client() as client:
        client.command(
            "CREATE TABLE t (k UInt32, tag LowCardinality(String), v Nullable(Float64)) ENGINE = MergeTree ORDER BY k"
        )
        client.insert(
            "t", [[1, "a", 0.5], [2, "b", None]], column_names=["k", "tag", "v"]
        )  # Native, lz4 body
        client.insert_arrow("t", pa.table({"k": pa.array([3], pa.uint32()), "tag": ["c"], "v": [1.5]}))
        assert client.query("SELECT * FROM t ORDER BY k").result_rows == [
            (1, "a", 0.5),
            (2, "b", None),
            (3, "c", 1.5),
        ]
        assert client.query_arrow("SELECT k FROM t ORDER BY k").column("k").to_pylist() == [1, 2, 3]
        raw = client.raw_query("SELECT k, tag FROM t WHERE k = 1", fmt="RowBinaryWithNamesAndTypes")
        assert raw.startswith(b"\x02\x01k\x03tag\x06UInt32\x16LowCardinality(String)")
    for encoding, decode in (("gzip", gzip.decompress), ("zstd", None), ("lz4", None)):
        status, headers, body = post(
            clickhouse_server,
            {"query": "SELECT sum(k) FROM t FORMAT TabSeparated", "enable_http_compression": 1},
            headers={"Accept-Encoding": encoding},
        )
        assert status == 200 and headers["Content-Encoding"] == encoding
        if decode:
            assert decode(body) == b"6\n"
    status, headers, body = post(
        clickhouse_server,
        {"query": "INSERT INTO t (k, tag) FORMAT TabSeparated"},
        gzip.compress(b"4\td\n5\te\n"),
        headers={"Content-Encoding": "gzip"},
    )
    assert status == 200 and json.loads(headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    status, headers, body = post(clickhouse_server, {"query": "SELECT count() FROM t", "query_id": "q-1"})
    assert (status, body) == (200, b"5\n")
    assert headers["X-ClickHouse-Query-Id"] == "q-1" and headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"] and headers["X-ClickHouse-Server-Display-Name"]


def test_sessions_temporary_tables_and_settings_per_query(clickhouse_server):
    def q(sql, **params):
        status, headers, body = post(clickhouse_server, {"query": sql, **params})
        assert status == 200, body
        return body.decode().strip()

    q("CREATE TEMPORARY TABLE tmp (x UInt8)", session_id="s1")
    q("INSERT INTO tmp VALUES (7)", session_id="s1")
    assert q("SELECT sum(x) FROM tmp", session_id="s1") == "7"
    status, headers, body = post(clickhouse_server, {"query": "SELECT sum(x) FROM tmp", "session_id": "s2"})
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"  # not another session's
    max_threads = "SELECT value FROM system.settings WHERE name = 'max_threads'"
    assert q(max_threads, session_id="s1", max_threads=3) == "3"  # a URL setting holds for its query
    assert q(max_threads, session_id="s1") != "3"  # ... only
    q("SET max_threads = 5", session_id="s1")  # a SET lives as long as the session
    assert q(max_threads, session_id="s1", max_threads=2) == "2"
    assert q(max_threads, session_id="s1") == "5"
    status, headers, body = post(
        clickhouse_server, {"query": "SELECT 1", "session_id": "nope", "session_check": 1}
    )
    assert headers["X-ClickHouse-Exception-Code"] == "372"
    assert q("SELECT {n:UInt8} + 1", param_n=41) == "42"


def test_a_busy_session_is_locked_and_errors_carry_clickhouse_codes(clickhouse_server):
    slow = threading.Thread(
        target=post, args=(clickhouse_server, {"query": "SELECT sleep(2)", "session_id": "busy"})
    )
    slow.start()
    try:
        time.sleep(0.5)
        status, headers, body = post(clickhouse_server, {"query": "SELECT 1", "session_id": "busy"})
    finally:
        slow.join()
    assert headers["X-ClickHouse-Exception-Code"] == "373" and b"SESSION_IS_LOCKED" in body
    status, headers, body = post(clickhouse_server, {"query": "SELEC 1"})
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62"
    assert (
        body.startswith(b"Code: 62. DB::Exception: Syntax error") and b"(SYNTAX_ERROR) (version 26." in body
    )
    status, headers, body = post(clickhouse_server, {"query": "SELECT 1"}, password="wrong")
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "516"
    assert b"AUTHENTICATION_FAILED" in body
    status, headers, body = post(clickhouse_server, {"query": "SELECT 1", "compress": 1})
    assert headers["X-ClickHouse-Exception-Code"] == "48"  # refused, never silently ignored
    from clickhouse_connect.driver.exceptions import DatabaseError

    with pytest.raises(DatabaseError, match="code: 516"):
        clickhouse_server.client(password="x")
