"""ClickHouse's HTTP interface in front of the embedded engine (chdb): a ClickHouse "server" for tests.

The one sanctioned stand-in of the suite: no ClickHouse server binary can be installed here, but
chdb is the ClickHouse engine itself (26.9), so everything behind the HTTP layer is real: SQL,
MergeTree, parts, mutations, formats, query parameters, settings, temporary tables. This module only
speaks the HTTP protocol clickhouse-connect speaks, well enough for the provider's hook:

* the query in the ``query`` URL parameter, the body, or both (concatenated, as ClickHouse does);
  ``INSERT ... FORMAT <fmt>`` followed by data in the body (Native, Arrow, RowBinary, TabSeparated...:
  the engine parses them through ``send_insert``); multipart form bodies (long query parameters);
* every URL parameter that is not a protocol one is a setting of that query only (``SET`` before it,
  the old values restored after, so a session keeps only what its own ``SET`` statements change);
  ``param_<name>`` are query parameters (``{name:Type}``), bound by the engine;
* ``session_id`` (with ``session_check`` and ``session_timeout``): one engine connection per session,
  so temporary tables and ``SET`` live as long as the session; a second concurrent query in a busy
  session is refused with ClickHouse's SESSION_IS_LOCKED, as a server does;
* output formats by the query's ``FORMAT`` clause (else ``default_format``, else TabSeparated),
  produced by the engine: Native, Arrow, ArrowStream, RowBinaryWithNamesAndTypes, TabSeparated, JSON...;
* compression: request bodies by ``Content-Encoding`` (lz4 frame, zstd, gzip, deflate); responses
  compressed with the first of those the client accepts when it sets ``enable_http_compression=1``
  (clickhouse-connect does). ClickHouse's own block compression (``compress=1``/``decompress=1``)
  is not implemented and is refused with an error, not ignored;
* the ``X-ClickHouse-*`` headers: Query-Id, Format, Timezone, Server-Display-Name, Summary (read,
  written and result rows), Exception-Code on errors;
* errors as ClickHouse sends them: ``Code: N. DB::Exception: ... (NAME) (version V)`` with the HTTP
  status ClickHouse maps the code to; a wrong user or password is code 516 (AUTHENTICATION_FAILED);
* ``/ping``.

Not implemented: the ``client_protocol_version`` block-info framing (clickhouse-connect's probe then
falls back to protocol 0, which it supports), progress headers while a query runs (the answer comes
once the query has ended, as with ``wait_end_of_query=1``), external data tables, TLS.

One process owns the engine (chdb is one engine per process), and serves any number of client
processes concurrently (a thread per request; the engine runs queries of different connections in
parallel). Start it with :func:`clickhouse_http_server`, or ``python -m tests.support.clickhouse_http
--path DIR --port N --user U --password P`` from the repository root.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import gzip
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parents[2]

# URL parameters of the HTTP protocol itself; every other one is a setting.
_PROTOCOL_PARAMS = {
    "query", "database", "default_format", "session_id", "session_timeout", "session_check",
    "query_id", "compress", "decompress", "user", "password", "quota_key", "stacktrace", "role",
    "buffer_size", "wait_end_of_query", "client_protocol_version", "close_session",
}  # fmt: skip
# Protocol behaviour the endpoint provides by itself; sent to the engine they would change nothing.
_HTTP_ONLY_SETTINGS = {
    "enable_http_compression", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "http_wait_end_of_query",
}  # fmt: skip
# ClickHouse's HTTP status for an exception code (HTTPHandler's exceptionCodeToHTTPStatus, abridged).
_HTTP_STATUS = {
    516: 403, 192: 403, 193: 403, 194: 401, 497: 403,  # auth failed, unknown user, wrong password...
    62: 400, 27: 400, 6: 400, 36: 400, 53: 400, 26: 400, 41: 400, 38: 400, 69: 400, 72: 400, 457: 400,
    60: 404, 46: 404, 47: 404, 50: 404, 56: 404, 81: 404, 115: 404,  # unknown table, function...
    372: 404, 373: 423, 48: 501, 159: 408,
}  # fmt: skip
_CODE = re.compile(r"Code:\s*(\d+)")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_FORMAT_TAIL = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
# An INSERT whose data follows its FORMAT clause: the data starts after one whitespace character.
_INSERT_DATA = re.compile(
    rb"^\s*INSERT\s+INTO\s.*?\bFORMAT\s+([A-Za-z0-9_]+)[ \t]*(?:\r?\n|\s)?", re.I | re.S
)
_RESULT_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "(")
_SUPPORTED_ENCODINGS = ("lz4", "zstd", "gzip", "deflate")
_HEADER_PEEK = 1 << 16  # bytes of a body searched for an INSERT's FORMAT clause


class ClickHouseHttpError(Exception):
    """An error to answer as ClickHouse does: code, message, symbolic name."""

    def __init__(self, code: int, message: str, name: str = "") -> None:
        super().__init__(message)
        self.code, self.name = code, name

    @classmethod
    def from_engine(cls, err: BaseException) -> ClickHouseHttpError:
        text = str(err).strip()
        code = _CODE.search(text)
        name = _NAME.search(text)
        return cls(int(code.group(1)) if code else 1001, text, name.group(1) if name else "STD_EXCEPTION")

    def body(self, version: str) -> bytes:
        text = str(self)
        if not text.startswith("Code:"):
            text = f"Code: {self.code}. DB::Exception: {text}" + (f" ({self.name})" if self.name else "")
        return f"{text} (version {version})\n".encode()


# -- compression ------------------------------------------------------------------------------------


def _zstd():
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


def decompress(data: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    if encoding == "zstd":
        return _zstd().decompress(data)
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    raise ClickHouseHttpError(48, f"Unknown HTTP Content-Encoding {encoding!r}", "NOT_IMPLEMENTED")


def compress(data: bytes, encoding: str) -> bytes:
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.compress(data)
    if encoding == "zstd":
        return _zstd().compress(data)
    if encoding == "gzip":
        return gzip.compress(data, compresslevel=1)
    return zlib.compress(data, 1)


def response_encoding(accept: str | None) -> str | None:
    """The first encoding of ``Accept-Encoding`` (in the client's order) the endpoint can produce."""
    for item in (accept or "").split(","):
        name = item.split(";")[0].strip().lower()
        if name in _SUPPORTED_ENCODINGS:
            return name
    return None


# -- the engine and its sessions ------------------------------------------------------------------------


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _setting_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ClickHouseHttpError(115, f"Unknown setting {name!r}", "UNKNOWN_SETTING")
    return name


@dataclass
class _Session:
    conn: object
    lock: threading.Lock
    timeout: float
    last_used: float


class Engine:
    """The embedded engine on ``path``: a connection per HTTP session, a fresh one per other query."""

    def __init__(self, path: str) -> None:
        from chdb.state.sqlitelike import connect

        self._connect = lambda: connect(path)
        # The engine lives while one connection is open; this one keeps it up between requests.
        self._anchor = self._connect()
        self.version, self.timezone = (
            self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        )
        self._sessions: dict[str, _Session] = {}
        self._guard = threading.Lock()

    @contextmanager
    def connection(
        self, session_id: str | None, timeout: float, check: bool
    ) -> Iterator[tuple[object, bool]]:
        """Yield ``(connection, is_session)``, the session's connection locked for this query."""
        if not session_id:
            conn = self._connect()
            try:
                yield conn, False
            finally:
                conn.close()
            return
        self._expire()
        with self._guard:
            session = self._sessions.get(session_id)
            if session is None:
                if check:
                    raise ClickHouseHttpError(372, f"Session {session_id} not found", "SESSION_NOT_FOUND")
                session = self._sessions[session_id] = _Session(
                    self._connect(), threading.Lock(), timeout, 0.0
                )
        if not session.lock.acquire(blocking=False):
            raise ClickHouseHttpError(
                373, f"Session {session_id} is locked by a concurrent client", "SESSION_IS_LOCKED"
            )
        try:
            session.timeout = timeout
            yield session.conn, True
        finally:
            session.last_used = time.monotonic()
            session.lock.release()

    def _expire(self) -> None:
        now = time.monotonic()
        with self._guard:
            idle = [
                k
                for k, s in self._sessions.items()
                if s.last_used and now - s.last_used > s.timeout and not s.lock.locked()
            ]
            for key in idle:
                self._sessions.pop(key).conn.close()


@dataclass
class Outcome:
    body: bytes
    fmt: str | None
    summary: dict


def run_statement(
    conn,
    sql: str,
    data: bytes | None,
    fmt: str | None,
    settings: dict[str, str],
    params: dict[str, str],
    restore: bool,
) -> Outcome:
    """Run one statement on ``conn`` with ``settings`` for it alone (restored after if ``restore``)."""
    saved: list[tuple[str, str, int]] = []
    names = [_setting_name(n) for n in settings]
    try:
        if names:
            if restore:
                listed = ", ".join(_quote(n) for n in names)
                rows = conn.query(
                    f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})",
                    "JSONCompact",
                ).bytes()
                saved = [tuple(r) for r in json.loads(rows)["data"]]
                if len(saved) < len(names):
                    unknown = sorted(set(names) - {r[0] for r in saved})
                    raise ClickHouseHttpError(115, f"Unknown setting '{unknown[0]}'", "UNKNOWN_SETTING")
            conn.query("SET " + ", ".join(f"{n} = {_quote(settings[n])}" for n in names), "TabSeparated")
        started = time.perf_counter_ns()
        if data is not None:
            inserter = conn.send_insert(sql, fmt or "TabSeparated")
            try:
                if data:
                    inserter.append(data)
                result = inserter.finish()
            except BaseException:
                inserter.cancel()
                raise
            summary = _summary(started, written_rows=result.rows_written, written_bytes=result.bytes_written)
            return Outcome(b"", None, summary)
        result = conn._conn.query(sql, fmt or "TabSeparated", params=params)
        if result.has_error():
            raise ClickHouseHttpError.from_engine(RuntimeError(result.error_message()))
        body = result.bytes() or b""
        counts = {
            "read_rows": result.rows_read(),
            "read_bytes": result.bytes_read(),
            "written_rows": result.rows_written(),
            "written_bytes": result.bytes_written(),
        }
        returns = sql.lstrip().upper().startswith(_RESULT_STATEMENTS)
        # The engine reports no result row count; the bytes are the body's.
        counts["result_bytes"] = len(body)
        return Outcome(body, (fmt or "TabSeparated") if returns else None, _summary(started, **counts))
    except ClickHouseHttpError:
        raise
    except Exception as err:
        raise ClickHouseHttpError.from_engine(err) from err
    finally:
        if saved:
            resets = [f"{n} = {_quote(v)}" if changed else f"{n} = DEFAULT" for n, v, changed in saved]
            conn.query("SET " + ", ".join(resets), "TabSeparated")


def _summary(started: int, **counts) -> dict:
    summary = {
        "read_rows": "0", "read_bytes": "0", "written_rows": "0", "written_bytes": "0",
        "total_rows_to_read": "0",
    }  # fmt: skip
    summary.update({k: str(int(v or 0)) for k, v in counts.items()})
    summary["elapsed_ns"] = str(time.perf_counter_ns() - started)
    return summary


def split_insert(text: bytes) -> tuple[str, bytes | None, str | None]:
    """``(statement, data, format)``: an ``INSERT ... FORMAT f`` with its data after it, or the
    statement alone (``data`` None) when it carries no data."""
    match = _INSERT_DATA.match(text[:_HEADER_PEEK])
    if not match:
        return text.decode(), None, None
    statement = text[: match.start(1)].decode()
    statement = re.sub(r"\bFORMAT\s*$", "", statement.rstrip(), flags=re.I).rstrip()
    return statement, text[match.end() :], match.group(1)


# -- HTTP ---------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse"
    engine: Engine
    user: str
    password: str
    display_name = "chdb-http-endpoint"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        if os.environ.get("CLICKHOUSE_HTTP_LOG"):
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _credentials(self, params: dict[str, str]) -> tuple[str, str]:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user, password
        if self.headers.get("X-ClickHouse-User"):
            return self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        return params.get("user", "default"), params.get("password", "")

    def _handle(self) -> None:
        query_id = str(uuid.uuid4())
        try:
            url = urlsplit(self.path)
            raw = self._read_body()
            if url.path.rstrip("/") == "/ping":
                return self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            query_id = params.get("query_id") or query_id
            user, password = self._credentials(params)
            if user != self.user or not secrets.compare_digest(password, self.password):
                raise ClickHouseHttpError(
                    516,
                    f"{user}: Authentication failed: password is incorrect, or there is no user with such name.",
                    "AUTHENTICATION_FAILED",
                )
            if params.get("compress") == "1" or params.get("decompress") == "1":
                raise ClickHouseHttpError(
                    48,
                    "ClickHouse's native block compression is not implemented by this endpoint",
                    "NOT_IMPLEMENTED",
                )
            body = decompress(raw, self.headers.get("Content-Encoding"))
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("multipart/form-data"):
                params.update(_form_fields(ctype, body))
                body = b""
            query = params.get("query", "")
            if not query and not body:
                return self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            text = (query.encode() + b"\n" + body) if query and body else (query.encode() or body)
            statement, data, fmt = split_insert(text)
            if data is None:
                tail = _FORMAT_TAIL.search(statement)
                fmt = tail.group(1) if tail else params.get("default_format") or "TabSeparated"
            settings = {
                k: v
                for k, v in params.items()
                if k not in _PROTOCOL_PARAMS and not k.startswith("param_") and k not in _HTTP_ONLY_SETTINGS
            }
            bind = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
            timeout = float(params.get("session_timeout") or 60)
            with self.engine.connection(
                params.get("session_id"), timeout, params.get("session_check") == "1"
            ) as (
                conn,
                is_session,
            ):
                if params.get("database"):
                    conn.query(f"USE `{params['database'].replace('`', '')}`", "TabSeparated")
                outcome = run_statement(conn, statement, data, fmt, settings, bind, restore=is_session)
            headers = {
                "X-ClickHouse-Summary": json.dumps(outcome.summary),
                "Content-Type": "text/plain; charset=UTF-8",
            }
            if outcome.fmt:
                headers["X-ClickHouse-Format"] = outcome.fmt
                if outcome.fmt.startswith(("Native", "Arrow", "RowBinary", "Parquet")):
                    headers["Content-Type"] = "application/octet-stream"
            payload = outcome.body
            encoding = response_encoding(self.headers.get("Accept-Encoding"))
            if payload and encoding and params.get("enable_http_compression") == "1":
                payload = compress(payload, encoding)
                headers["Content-Encoding"] = encoding
            self._send(200, payload, headers, query_id)
        except ClickHouseHttpError as err:
            status = _HTTP_STATUS.get(err.code, 500)
            self._send(
                status,
                err.body(self.engine.version),
                {"X-ClickHouse-Exception-Code": str(err.code)},
                query_id,
            )
        except Exception as err:  # a bug of the endpoint: say so as ClickHouse says a logical error
            self._send(500, ClickHouseHttpError(49, repr(err), "LOGICAL_ERROR").body(self.engine.version),
                       {"X-ClickHouse-Exception-Code": "49"}, query_id)  # fmt: skip

    def _send(self, status: int, body: bytes, headers: dict[str, str], query_id: str = "") -> None:
        self.send_response(status)
        if query_id:
            self.send_header("X-ClickHouse-Query-Id", query_id)
        self.send_header("X-ClickHouse-Timezone", self.engine.timezone)
        self.send_header("X-ClickHouse-Server-Display-Name", self.display_name)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The plain fields of a multipart/form-data body (the query and its parameters)."""
    message = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields = {}
    for part in message.get_payload() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if name and not part.get_filename():
            fields[name] = part.get_payload(decode=True).decode()
    return fields


def serve(path: str, port: int, user: str, password: str, host: str = "127.0.0.1") -> None:
    """Serve ClickHouse's HTTP interface for the engine on ``path`` until terminated."""
    os.makedirs(path, exist_ok=True)
    engine = Engine(path)
    handler = type("BoundHandler", (Handler,), {"engine": engine, "user": user, "password": password})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.serve_forever()


# -- starting it from a test or a script ------------------------------------------------------------------


@dataclass(frozen=True)
class ClickHouseEndpoint:
    """Where the endpoint listens and how to log in."""

    host: str
    port: int
    user: str
    password: str
    path: str

    def connection(self) -> dict:
        """An ordinary ``clickhouse`` Airflow connection to it (the JSON of ``AIRFLOW_CONN_*``)."""
        return {
            "conn_type": "clickhouse",
            "host": self.host,
            "port": self.port,
            "login": self.user,
            "password": self.password,
        }

    def client(self, **kwargs):
        """A clickhouse-connect client (caller closes it); ``kwargs`` override the login too."""
        import clickhouse_connect

        login = {"host": self.host, "port": self.port, "username": self.user, "password": self.password}
        return clickhouse_connect.get_client(**{**login, **kwargs})


@contextmanager
def clickhouse_http_server(
    path: str | Path, user: str = "airflow", password: str | None = None
) -> Iterator[ClickHouseEndpoint]:
    """Start the endpoint in its own process on a free loopback port for the engine at ``path``;
    yield its :class:`ClickHouseEndpoint`; stop it on exit."""
    from airflow_backfill_provider.testing.services import free_port, stop_process, wait_http

    password = password or secrets.token_hex(8)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.clickhouse_http", "--path", str(path), "--port", str(port),
         "--user", user, "--password", password],
        cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 60)
        yield ClickHouseEndpoint("127.0.0.1", port, user, password, str(path))
    finally:
        stop_process(proc, 15)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="the engine's data directory")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    args = parser.parse_args(argv)
    serve(args.path, args.port, args.user, args.password, args.host)


if __name__ == "__main__":
    main()
