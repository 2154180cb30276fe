"""What the endpoint does with each client message, and how replies are streamed as packets.

The worker thread of a connection runs :meth:`RequestHandler.run`: PRELOGIN, LOGIN7, then
requests in order. Replies go through :class:`Reply`, which cuts the token stream into packets of
the negotiated size (EOM on the last, MS-TDS 2.2.3.1.2) and, at each flush, checks whether an
ATTENTION arrived so a streaming result stops on a token boundary (MS-TDS 2.2.1.7 "Attention").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from . import packets as P
from . import tokens as T
from .backend import LOGIN_FAILED, PreEncoded, ResultSet, Session, SqlError
from .requests import ProtocolError, batch_text, parse_rpc, parse_transaction_request

if TYPE_CHECKING:
    from .server import Connection

log = logging.getLogger(__name__)

FLUSH_BYTES = 1 << 18  # send when this much is buffered (and look for an ATTENTION)
SLOW_FLUSH_SECONDS = 0.1  # or when rows trickle in from a slow generator for this long
_LOG_TEXT = 300  # statement text is logged truncated to this many characters


class Cancelled(Exception):
    """An ATTENTION arrived; the reply is cut at the last complete token."""


class Dropped(Exception):
    """The drop_after_rows() fault hook closed the socket."""


class Reply:
    """One server message being written: tokens are buffered, then sent as full packets."""

    def __init__(self, handler: RequestHandler) -> None:
        self.h = handler
        self.buf = bytearray()
        self.check_attention = True

    def write(self, data: bytes) -> None:
        if len(data) < FLUSH_BYTES:
            self.buf += data
            if len(self.buf) >= FLUSH_BYTES:
                self.flush()
            return
        # A large block (a PreEncoded chunk): complete the buffered packet, then packetize the block
        # in place rather than copying it through the buffer first.
        step = self.h.packet_size - P.HEADER_SIZE
        view = memoryview(data)
        head = -len(self.buf) % step
        self.buf += view[:head]
        if self.buf:
            self.h.send(self.buf, eom=False)
            del self.buf[:]
        body = view[head:]
        full = (len(body) - 1) // step * step  # keep at least one byte back for the EOM packet
        self.h.send(body[:full], eom=False)
        self.buf += body[full:]
        if self.check_attention and self.h.conn.attention.is_set():
            raise Cancelled

    def flush(self) -> None:
        """Send every full packet in the buffer; raise Cancelled if an ATTENTION is pending."""
        step = self.h.packet_size - P.HEADER_SIZE
        full = len(self.buf) // step * step
        if full and full != len(self.buf):
            self.h.send(memoryview(self.buf)[:full], eom=False)
            del self.buf[:full]
        elif full:  # keep one packet back: the final one must carry EOM
            self.h.send(memoryview(self.buf)[: full - step], eom=False)
            del self.buf[: full - step]
        if self.check_attention and self.h.conn.attention.is_set():
            raise Cancelled

    def finish(self) -> None:
        self.h.send(self.buf, eom=True)
        self.buf = bytearray()


class RequestHandler:
    """The protocol state of one connection (worker thread only)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.server = conn.server
        self.backend = conn.server.backend
        self.packet_size = P.DEFAULT_PACKET_SIZE
        self.packet_id = 1
        self.session: Session | None = None
        self.transaction = 0
        self._next_transaction = 1
        self._attention_acked = False
        self.prepared: dict[int, tuple[str, list[str]]] = {}
        self._next_handle = 1

    # --- I/O ---

    def send(self, payload: bytes | bytearray | memoryview, *, eom: bool) -> None:
        data, self.packet_id = P.packetize(payload, self.packet_size, self.conn.spid, self.packet_id, eom)
        self.conn.sock.sendall(data)
        if eom:
            self.packet_id = 1

    def reply(self, data: bytes) -> None:
        r = Reply(self)
        r.check_attention = False
        r.write(data)
        r.finish()

    def next_message(self) -> P.Message:
        msg = self.conn.inbox.get()
        if msg is None:
            raise P.ConnectionClosed("client went away")
        return msg

    def error_token(self, exc: SqlError) -> bytes:
        return T.message(
            exc.number, exc.message, severity=exc.severity, state=exc.state, server=self.server.server_name
        )

    # --- the conversation ---

    def run(self) -> None:
        msg = self.next_message()
        if msg.type == P.PRELOGIN:
            if not self.prelogin(msg):
                return
            msg = self.next_message()
        if msg.type != P.LOGIN7:
            raise P.ConnectionClosed(f"expected LOGIN7, got packet type {msg.type}")
        if not self.login(msg):
            return
        while True:
            msg = self.next_message()
            if msg.type == P.ATTENTION:
                self.conn.attention.clear()
                if self.session is not None:
                    self.session.cancelled.clear()
                if self._attention_acked:
                    self._attention_acked = False  # already acknowledged inside the reply it cut
                else:
                    self.reply(T.done(T.DONE_ATTN))
                continue
            reply = Reply(self)
            if msg.reset:
                # RESETCONNECTION (pooled connection reused): acknowledge with ENVCHANGE 18.
                self.prepared.clear()
                reply.write(T.env_bytes(T.ENV_RESET_ACK, b"", b""))
            try:
                if msg.type == P.SQL_BATCH:
                    self.batch(reply, msg.data)
                elif msg.type == P.RPC:
                    self.rpc(reply, msg.data)
                elif msg.type == P.TRANSACTION_MANAGER:
                    self.transaction_request(reply, msg.data)
                else:
                    raise ProtocolError(f"unsupported packet type {msg.type}")
            except Cancelled:
                log.debug("spid %d: ATTENTION, reply cut", self.conn.spid)
                reply.write(T.done(T.DONE_ATTN))
                self._attention_acked = True
            except Dropped:
                return
            except ProtocolError as exc:
                log.warning("spid %d: %s", self.conn.spid, exc)
                reply.write(self.error_token(SqlError(50000, f"TDS endpoint: {exc}")))
                reply.write(T.done(T.DONE_ERROR))
            reply.finish()

    def prelogin(self, msg: P.Message) -> bool:
        options = P.parse_prelogin(msg.data)
        client_enc = options.get(P.PL_ENCRYPTION, b"\x00")[0]
        log.debug("spid %d: PRELOGIN encryption=%d", self.conn.spid, client_enc)
        # No TLS here: ENCRYPT_NOT_SUP. A client that demands encryption (ENCRYPT_ON/REQ) must then
        # end the connection itself (MS-TDS 2.2.6.5 "ENCRYPTION"), and the drivers say why.
        self.reply(P.build_prelogin(P.ENCRYPT_NOT_SUP, version=self.server.version, thread_id=self.conn.spid))
        return True

    def login(self, msg: P.Message) -> bool:
        login = P.parse_login7(msg.data)
        log.debug(
            "spid %d: LOGIN7 user=%r database=%r app=%r library=%r tds=0x%08X packet=%d features=%s",
            self.conn.spid,
            login.username,
            login.database,
            login.appname,
            login.library,
            login.tds_version,
            login.packet_size,
            login.feature_ids,
        )
        try:
            if login.integrated_security:
                raise SqlError(
                    LOGIN_FAILED, "Login failed. Integrated authentication is not supported.", severity=14
                )
            database = self.backend.login(login.username, login.password, login.database or None)
        except SqlError as exc:
            # SQL Server follows a 4060 with an 18456 too; then db-lib reports only the 18456, so
            # the endpoint sends the backend's error alone and the drivers show its number.
            self._record_login(login, login.database, self.packet_size, False)  # before the client hears
            self.reply(self.error_token(exc) + T.done(T.DONE_ERROR))
            return False
        self.session = Session(login=login.username, database=database, spid=self.conn.spid)
        name = self.server.server_name
        size = login.packet_size if 512 <= login.packet_size <= P.MAX_PACKET_SIZE else P.DEFAULT_PACKET_SIZE
        # The login response SQL Server sends (MS-TDS 4.3 "Login Response").
        tokens = (
            T.env_text(T.ENV_DATABASE, database, "master")
            + T.message(5701, f"Changed database context to '{database}'.", severity=0, state=2, server=name)
            + T.env_bytes(T.ENV_COLLATION, T.COLLATION, b"")
            + T.env_text(T.ENV_LANGUAGE, "us_english", "")
            + T.message(5703, "Changed language setting to us_english.", severity=0, state=1, server=name)
            + T.loginack(version=self.server.version)
            + T.env_text(T.ENV_PACKETSIZE, str(size), str(P.DEFAULT_PACKET_SIZE))
            + T.done()
        )
        self._record_login(login, database, size, True)
        self.reply(tokens)
        self.packet_size = size
        return True

    # --- SQL_BATCH ---

    def batch(self, reply: Reply, data: bytes) -> None:
        sql = batch_text(data)
        log.debug("spid %d: SQL_BATCH %s", self.conn.spid, _short(sql))
        self._record("batch", sql, {})
        status, count, curcmd = self.statement(reply, sql, {}, token=T.DONE)
        reply.write(T.done(status, count, curcmd=curcmd))

    # --- running a statement and streaming its results ---

    def statement(
        self, reply: Reply, sql: str, params: Mapping[str, object], *, token: int
    ) -> tuple[int, int, int]:
        """Send the results of one backend.execute(). Every result but the last gets its DONE
        (``token``: DONE in a batch, DONEINPROC in an RPC) with DONE_MORE here; the last one's
        (status, rowcount, curcmd) is returned for the caller to close the reply with."""
        assert self.session is not None
        pending: tuple[int, int, int] | None = None
        results = iter(self.backend.execute(sql, params, self.session))
        try:
            for result in results:
                if self.conn.attention.is_set():
                    raise Cancelled
                if pending is not None:
                    reply.write(T.done(pending[0] | T.DONE_MORE, pending[1], token=token, curcmd=pending[2]))
                pending = self.result(reply, result)
        except SqlError as exc:
            log.debug("spid %d: error %d: %s", self.conn.spid, exc.number, exc.message)
            if pending is not None:
                reply.write(T.done(pending[0] | T.DONE_MORE, pending[1], token=token, curcmd=pending[2]))
            reply.write(self.error_token(exc))
            return T.DONE_ERROR, 0, 0
        except (Cancelled, Dropped, OSError, P.ConnectionClosed):
            raise
        except Exception as exc:  # a backend bug: report it like SQL Server reports an error
            log.exception("spid %d: backend failed on %s", self.conn.spid, _short(sql))
            reply.write(self.error_token(SqlError(50000, f"backend error: {exc!r}")))
            return T.DONE_ERROR, 0, 0
        finally:
            _close_iterator(results)
        return pending if pending is not None else (T.DONE_FINAL, 0, 0)

    def result(self, reply: Reply, result: ResultSet | PreEncoded) -> tuple[int, int, int]:
        if isinstance(result, PreEncoded):
            return self.pre_encoded(reply, result.chunks)
        if not result.columns:
            return (T.DONE_FINAL if result.rowcount is None else T.DONE_COUNT), result.rowcount or 0, 0
        encoder = T.RowEncoder(result.columns)
        reply.write(encoder.metadata())
        drop_at, self._dropped = self.server.take_drop_after([c.name for c in result.columns])
        drop_at = -1 if drop_at is None else drop_at
        buf, row, count = reply.buf, encoder.row, 0
        attention = self.conn.attention
        last_flush = time.monotonic()
        if count == drop_at:
            self.drop(reply)
        rows = iter(result.rows)
        try:
            for values in rows:
                buf += row(values)
                count += 1
                if attention.is_set():  # ATTENTION: stop after this complete row
                    raise Cancelled
                if len(buf) >= FLUSH_BYTES:
                    reply.flush()
                    last_flush = time.monotonic()
                elif not count & 63 and time.monotonic() - last_flush > SLOW_FLUSH_SECONDS:
                    reply.flush()  # a slow generator: let the client see the rows so far
                    last_flush = time.monotonic()
                if count == drop_at:
                    self.drop(reply)
        finally:
            _close_iterator(rows)  # a backend generator cut short runs its cleanup now
        return T.DONE_COUNT, count, T.CURCMD_SELECT

    def drop(self, reply: Reply) -> None:
        """The fault hook: send what is buffered (no EOM), then close the socket."""
        log.debug("spid %d: dropping the connection mid-result (fault hook)", self.conn.spid)
        self.send(reply.buf, eom=False)
        self.conn.close()
        self._dropped.set()
        raise Dropped

    def pre_encoded(self, reply: Reply, chunks: Iterable[bytes]) -> tuple[int, int, int]:
        """Stream PreEncoded chunks as they are, holding back the trailing 13-byte DONE so it can be
        re-sent as the right token (DONE or DONEINPROC, with or without DONE_MORE)."""
        tail = b""
        for chunk in chunks:
            if len(chunk) >= 13:
                if tail:
                    reply.write(tail)
                reply.write(chunk[:-13])
                tail = bytes(chunk[-13:])
            else:
                joined = tail + bytes(chunk)
                reply.write(joined[:-13])
                tail = joined[-13:]
        if len(tail) != 13 or tail[0] not in (T.DONE, T.DONEPROC, T.DONEINPROC):
            raise ProtocolError("a PreEncoded result must end with a DONE token")
        status = int.from_bytes(tail[1:3], "little") & ~T.DONE_MORE
        return status, int.from_bytes(tail[5:13], "little"), int.from_bytes(tail[3:5], "little")

    # --- RPC ---

    def rpc(self, reply: Reply, data: bytes) -> None:
        from .rpc import run_rpc_call  # the RPC procedures live in their own module

        calls = parse_rpc(data)
        for i, call in enumerate(calls):
            more = T.DONE_MORE if i < len(calls) - 1 else 0
            run_rpc_call(self, reply, call, more)

    # --- Transaction Manager (MS-TDS 2.2.6.9) ---

    def transaction_request(self, reply: Reply, data: bytes) -> None:
        from .requests import TM_BEGIN_XACT, TM_COMMIT_XACT, TM_ROLLBACK_XACT

        req = parse_transaction_request(data)
        log.debug(
            "spid %d: TM request %d name=%r begin_after=%s",
            self.conn.spid,
            req.kind,
            req.name,
            req.begin_after,
        )
        self._record(f"tm:{req.kind}", req.name, {})
        if req.kind == TM_BEGIN_XACT:
            reply.write(self._begin())
        elif req.kind in (TM_COMMIT_XACT, TM_ROLLBACK_XACT):
            kind = T.ENV_COMMIT_TRAN if req.kind == TM_COMMIT_XACT else T.ENV_ROLLBACK_TRAN
            old, self.transaction = self.transaction, 0
            reply.write(T.env_bytes(kind, b"", old.to_bytes(8, "little") if old else b""))
            if req.begin_after:
                reply.write(self._begin())
        # TM_GET_DTC_ADDRESS, TM_SAVE_XACT and the others: acknowledged, nothing to do here.
        reply.write(T.done())

    def _begin(self) -> bytes:
        """ENVCHANGE type 8 with a new 8-byte transaction descriptor (the client sends it back in
        its ALL_HEADERS Transaction Descriptor header)."""
        self.transaction = self._next_transaction
        self._next_transaction += 1
        return T.env_bytes(T.ENV_BEGIN_TRAN, self.transaction.to_bytes(8, "little"), b"")

    def _record(
        self, kind: str, sql: str, params: Mapping[str, object], types: Mapping[str, int] | None = None
    ) -> None:
        from .server import RequestRecord

        self.server.requests.append(RequestRecord(self.conn.spid, kind, sql, dict(params), dict(types or {})))

    def _record_login(self, login: P.Login7, database: str, size: int, ok: bool) -> None:
        from .server import LoginRecord

        record = LoginRecord(
            self.conn.spid,
            login.username,
            database,
            login.appname,
            login.library,
            login.tds_version,
            size,
            ok,
        )
        self.server.logins.append(record)


def _close_iterator(it: object) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _LOG_TEXT else text[:_LOG_TEXT] + "..."
