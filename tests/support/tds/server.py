"""A TDS 7.4 endpoint on loopback that real SQL Server drivers connect to, for tests.

No SQL Server can run on the test machines, so this speaks enough of MS-TDS (Microsoft's Tabular
Data Stream specification) for pymssql/FreeTDS, mssql-python (ODBC Driver 18) and FreeTDS ODBC:
PRELOGIN (plain text only), LOGIN7 with SQL authentication, SQL_BATCH, RPC (sp_executesql,
sp_prepexec, sp_prepare, sp_execute, sp_unprepare), Transaction Manager requests and ATTENTION.
What the statements mean is the :class:`~tests.support.tds.backend.Backend`'s business.

Each client connection has a reader thread (so an ATTENTION is seen while a result streams) and a
worker thread that answers requests in order; see :mod:`tests.support.tds.handlers`.

Statements the drivers send by themselves, verbatim as they arrived here (pymssql 2.4.6 with
FreeTDS 1.5, SQLAlchemy 2.1, mssql-python 1.16, pyodbc 5.5 and arrow-odbc 10.6 over FreeTDS ODBC
(Debian tdsodbc) and over ODBC Driver 18.6). A backend must answer each the way SQL Server would:
an empty success for SET/use/transaction statements, the result sets noted below for queries.

pymssql, on connect (SQL_BATCH; parameters are substituted client side as N'...' literals)::

    SET ARITHABORT ON;SET CONCAT_NULL_YIELDS_NULL ON;SET ANSI_NULLS ON;SET ANSI_NULL_DFLT_ON ON;SET ANSI_PADDING ON;SET ANSI_WARNINGS ON;SET ANSI_NULL_DFLT_ON ON;SET CURSOR_CLOSE_ON_COMMIT ON;SET QUOTED_IDENTIFIER ON;SET TEXTSIZE 2147483647;
    use [Runtime]
    BEGIN TRAN                      (not with autocommit=True)

  then ``COMMIT TRAN`` + ``BEGIN TRAN`` for commit(), ``ROLLBACK TRAN`` + ``BEGIN TRAN`` for
  rollback(); nothing on close().

SQLAlchemy over pymssql, after pymssql's three, on the engine's first connect::

    select @@version                -> one nvarchar row, e.g. 'Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64) ...'
    SELECT schema_name()            -> one row 'dbo'
    SELECT name FROM sys.system_views WHERE name IN ('dm_exec_sessions', 'dm_pdw_nodes_exec_sessions')
                                    -> one row 'dm_exec_sessions'
    (newlines and indentation as SQLAlchemy sends them)
                    SELECT CASE transaction_isolation_level
                    WHEN 0 THEN NULL
                    WHEN 1 THEN 'READ UNCOMMITTED'
                    WHEN 2 THEN 'READ COMMITTED'
                    WHEN 3 THEN 'REPEATABLE READ'
                    WHEN 4 THEN 'SERIALIZABLE'
                    WHEN 5 THEN 'SNAPSHOT' END
                    AS TRANSACTION_ISOLATION_LEVEL
                    FROM sys.dm_exec_sessions
                    where session_id = @@SPID
                                    -> one (var)char row 'READ COMMITTED' (a str: SQLAlchemy calls .upper())
    SELECT CAST('test max support' AS NVARCHAR(max))   -> one NVARCHAR(MAX) row
    SELECT 1 FROM fn_listextendedproperty(default, default, default, default, default, default, default)
                                    -> a result set (may be empty); an error makes it assume no comments
    ROLLBACK TRAN
    BEGIN TRAN

  and per pooled checkout/return: ``ROLLBACK TRAN`` + ``BEGIN TRAN`` (``COMMIT TRAN`` + ``BEGIN
  TRAN`` after engine.begin()).

mssql-python (ODBC Driver 18): statements as RPC ``sp_prepexec`` (``@P1``... in the text, values
unnamed, names from the @params declaration), ``sp_unprepare`` when a cursor/connection closes.
With autocommit=False: SQL_BATCH `` SET TRANSACTION ISOLATION LEVEL READ COMMITTED `` (leading and
trailing space included), then Transaction Manager TM_BEGIN_XACT, TM_COMMIT_XACT (fBeginXact=1) for
commit(), TM_ROLLBACK_XACT on close. With autocommit=True nothing on connect; close() sends
TM_BEGIN_XACT + TM_ROLLBACK_XACT. It sends ASCII str parameters as VARCHAR (VARCHAR(MAX) when long), others as NVARCHAR.

pyodbc over FreeTDS ODBC, on connect (pyodbc's SQLGetTypeInfo; the first row's PRECISION sets the
varchar/nvarchar/varbinary limits and, for 93, the fractional digits of datetime parameters; with
no rows pyodbc sends datetime parameters without fractional seconds)::

    sp_datatype_info_100 12,3
    sp_datatype_info_100 -9,3
    sp_datatype_info_100 -3,3
    sp_datatype_info_100 93,3

  then ``sp_prepexec`` + ``sp_unprepare`` per statement (the @stmt/@params as NTEXT); with
  autocommit=False TM_BEGIN_XACT, TM_COMMIT_XACT (fBeginXact=1), TM_ROLLBACK_XACT on close.

arrow-odbc (FreeTDS ODBC or ODBC Driver 18): nothing on connect; ``sp_executesql`` when the query
has parameters, SQL_BATCH when not.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import socket
import threading
from collections.abc import Sequence
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
        self._drop_column: str | None = None
        self._dropped = threading.Event()

    # --- lifecycle ---

    def start(self) -> TdsServer:
        listener = socket.create_server((self.host, self._requested_port))
        listener.settimeout(0.2)  # so the accept loop notices stop() without a wake-up trick
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"tds-{self.port}-accept", daemon=True
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

    def drop_after_rows(self, n: int | None, *, column: str | None = None) -> threading.Event:
        """Make the server close the client's socket after sending ``n`` rows of the next result
        set with columns (on any connection): a connection dropped mid-read. ``None`` disarms.
        With ``column``, only a result set that has a column of that name counts (so a driver's or
        a pool's own queries, e.g. SQLAlchemy's pre-ping ``SELECT 1``, pass untouched).

        Returns an Event set once the socket is closed. A client whose fetch holds the GIL while it
        waits for the network (mssql-python's fetchone/fetchmany) can starve this in-process server
        before it closes the socket; such a test waits for the Event before fetching.
        """
        with self._lock:
            self._drop_after = n
            self._drop_column = column
            self._dropped = threading.Event()
            return self._dropped

    def take_drop_after(self, columns: Sequence[str] = ()) -> tuple[int | None, threading.Event]:
        """Consume the one-shot drop_after_rows() setting when a result set with ``columns`` starts."""
        with self._lock:
            if self._drop_column is not None and self._drop_column not in columns:
                return None, self._dropped
            n, self._drop_after = self._drop_after, None
            return n, self._dropped

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
        self._reader = threading.Thread(
            target=self._read_loop, name=f"tds-{server.port}-read-{spid}", daemon=True
        )
        self._worker = threading.Thread(target=self._work, name=f"tds-{server.port}-spid-{spid}", daemon=True)

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
