"""A TDS 7.4 endpoint on loopback that real SQL Server drivers connect to, for tests.

No SQL Server can run on the test machines, so this speaks enough of MS-TDS (Microsoft's Tabular
Data Stream specification) for pymssql/FreeTDS, mssql-python (ODBC Driver 18) and FreeTDS ODBC:
PRELOGIN (plain text only), LOGIN7 with SQL authentication, SQL_BATCH, RPC (sp_executesql,
sp_prepexec, sp_prepare, sp_execute, sp_unprepare), Transaction Manager requests and ATTENTION.
What the statements mean is the :class:`~tests.support.tds.backend.Backend`'s business.

Each client connection has a reader thread (so an ATTENTION is seen while a result streams) and a
worker thread that answers requests in order; see :mod:`tests.support.tds.handlers`.

Statements the drivers send by themselves (recorded from this endpoint; a backend must answer
them or the connection fails):

* pymssql 2.4 (FreeTDS 1.5, db-lib), on connect, as SQL_BATCH::

      (FILLED IN BELOW AFTER MEASUREMENT)
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import socket
import threading
from dataclasses import dataclass, field

from .backend import Backend
from .handlers import RequestHandler
from .packets import ATTENTION, ConnectionClosed, Message, read_message

log = logging.getLogger(__name__)


@dataclass
class RequestRecord:
    """One request as it arrived (for tests and for finding out what a driver sends)."""

    spid: int
    kind: str  # "batch", "rpc:<proc>", "tm:<type>"
    sql: str
    params: dict
    types: dict = field(default_factory=dict)  # RPC parameter name -> TDS type id (e.g. 0x63 NTEXT)


@dataclass
class LoginRecord:
    """One successful or refused LOGIN7 (never the password)."""

    spid: int
    user: str
    database: str
    app: str
    library: str
    tds_version: int
    packet_size: int  # as negotiated: the client's request, or 4096 when it asked for 0
    ok: bool


class TdsServer:
    """The endpoint: ``with TdsServer(backend) as server: connect to 127.0.0.1:server.port``.

    ``server_name`` appears in ERROR/INFO tokens; ``version`` is the SQL Server version announced in
    PRELOGIN and LOGINACK (16.0 is SQL Server 2022).
    """

    def __init__(
        self,
        backend: Backend,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        server_name: str = "TDSENDPOINT",
        version: tuple[int, int, int] = (16, 0, 1000),
    ) -> None:
        self.backend = backend
        self.host = host
        self._requested_port = port
        self.server_name = server_name
        self.version = version
        self.port = 0
        self.requests: collections.deque[RequestRecord] = collections.deque(maxlen=10_000)
        self.logins: collections.deque[LoginRecord] = collections.deque(maxlen=1_000)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._spids = itertools.count(51)  # user sessions start above 50 in SQL Server
        self._drop_after: int | None = None

    # --- lifecycle ---

    def start(self) -> TdsServer:
        listener = socket.create_server((self.host, self._requested_port))
        listener.settimeout(0.2)  # so the accept loop notices stop() without a wake-up trick
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"tds-accept-{self.port}", daemon=True
        )
        self._accept_thread.start()
        log.debug("TDS endpoint listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Close the listening socket and every client socket, and join all threads."""
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.close()
        for conn in connections:
            conn.join(5)

    def __enter__(self) -> TdsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- fault injection ---

    def drop_after_rows(self, n: int | None) -> None:
        """Make the server close the client's socket after sending ``n`` rows of the next result
        set with columns (on any connection): a connection dropped mid-read. ``None`` disarms."""
        with self._lock:
            self._drop_after = n

    def take_drop_after(self) -> int | None:
        """Consume the one-shot drop_after_rows() setting (called when a result set starts)."""
        with self._lock:
            n, self._drop_after = self._drop_after, None
            return n

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    # --- internals ---

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, sock, next(self._spids))
            with self._lock:
                self._connections.add(conn)
            log.debug("spid %d: connection from %s:%d", conn.spid, *peer)
            conn.start()

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)


class Connection:
    """One client connection: a reader thread queues messages (and flags ATTENTION at once), the
    worker thread runs the :class:`RequestHandler` on them in order."""

    def __init__(self, server: TdsServer, sock: socket.socket, spid: int) -> None:
        self.server = server
        self.sock = sock
        self.spid = spid
        self.inbox: queue.Queue[Message | None] = queue.Queue()
        self.attention = threading.Event()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name=f"tds-read-{spid}", daemon=True)
        self._worker = threading.Thread(target=self._work, name=f"tds-spid-{spid}", daemon=True)

    def start(self) -> None:
        self._reader.start()
        self._worker.start()

    def close(self) -> None:
        """Shut the socket (unblocks both threads); safe to call more than once, from any thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def join(self, timeout: float) -> None:
        for thread in (self._reader, self._worker):
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _read_loop(self) -> None:
        try:
            while True:
                msg = read_message(self.sock)
                self.inbox.put(msg)
                if msg.type == ATTENTION:
                    # Set after queueing, so whoever sees the flag finds the message queued.
                    self.attention.set()
                    handler = getattr(self, "handler", None)
                    if handler is not None and handler.session is not None:
                        handler.session.cancelled.set()
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.inbox.put(None)

    def _work(self) -> None:
        self.handler = RequestHandler(self)
        try:
            self.handler.run()
        except (ConnectionClosed, OSError) as exc:
            log.debug("spid %d: connection ended: %s", self.spid, exc)
        except Exception:
            log.exception("spid %d: endpoint error", self.spid)
        finally:
            self.close()
            self.server._forget(self)
