"""Decoding of client requests after login: SQL_BATCH, RPC and Transaction Manager messages.

Each starts with ALL_HEADERS (MS-TDS 2.2.5.3) in TDS 7.2+. RPC parameters are typed values
(MS-TDS 2.2.6.6 "RPC Request", 2.2.5.5 "Data Type Definitions"), decoded here to Python values
(int, bool, float, Decimal, datetime/date/time, str, bytes, UUID) for the backend.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

# Well-known stored procedure ids of an RPC's ProcID (MS-TDS 2.2.6.6, "ProcID").
PROC_IDS = {
    1: "sp_cursor",
    2: "sp_cursoropen",
    3: "sp_cursorprepare",
    4: "sp_cursorexecute",
    5: "sp_cursorprepexec",
    6: "sp_cursorunprepare",
    7: "sp_cursorfetch",
    8: "sp_cursoroption",
    9: "sp_cursorclose",
    10: "sp_executesql",
    11: "sp_prepare",
    12: "sp_execute",
    13: "sp_prepexec",
    14: "sp_prepexecrpc",
    15: "sp_unprepare",
}

# Transaction Manager request types (MS-TDS 2.2.6.9).
TM_GET_DTC_ADDRESS = 0
TM_PROPAGATE_XACT = 1
TM_BEGIN_XACT = 5
TM_PROMOTE_XACT = 6
TM_COMMIT_XACT = 7
TM_ROLLBACK_XACT = 8
TM_SAVE_XACT = 9


class ProtocolError(Exception):
    """A request the endpoint cannot decode (reported to the client as an error)."""


class Reader:
    """A cursor over a message payload with the little-endian reads TDS uses."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("request truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        s = struct.Struct("<" + fmt)
        (value,) = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return value

    def byte(self) -> int:
        return self.unpack("B")

    def ushort(self) -> int:
        return self.unpack("H")

    def b_varchar(self) -> str:
        return self.take(2 * self.byte()).decode("utf-16-le")

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


def skip_all_headers(data: bytes) -> tuple[int, int]:
    """ALL_HEADERS (MS-TDS 2.2.5.3): returns (offset after it, transaction descriptor or 0). Its
    first DWORD is the total length including itself; header type 2 holds the descriptor."""
    (total,) = struct.unpack_from("<I", data, 0)
    descriptor = 0
    pos = 4
    while pos < total:
        length, kind = struct.unpack_from("<IH", data, pos)
        if kind == 2:
            (descriptor,) = struct.unpack_from("<Q", data, pos + 6)
        pos += max(length, 6)
    return total, descriptor


def batch_text(data: bytes) -> str:
    """SQL_BATCH (MS-TDS 2.2.6.7): ALL_HEADERS, then the batch as UCS-2LE."""
    start, _ = skip_all_headers(data)
    return data[start:].decode("utf-16-le")


@dataclass
class RpcParam:
    name: str
    value: object
    output: bool = False
    type_id: int = 0


@dataclass
class RpcCall:
    """One RPCReqBatch: a procedure (by name, or by ProcID mapped to its name) and its parameters."""

    proc: str
    params: list[RpcParam] = field(default_factory=list)


def parse_rpc(data: bytes) -> list[RpcCall]:
    """RPC Request: ALL_HEADERS then RPCReqBatch separated by BatchFlag 0xFF or NoExecFlag 0xFE."""
    start, _ = skip_all_headers(data)
    r = Reader(data, start)
    calls = []
    while not r.at_end():
        name_len = r.ushort()
        if name_len == 0xFFFF:
            proc_id = r.ushort()
            proc = PROC_IDS.get(proc_id, f"procid_{proc_id}")
        else:
            proc = r.take(2 * name_len).decode("utf-16-le")
        r.ushort()  # OptionFlags: fWithRecomp, fNoMetaData, fReuseMetaData
        call = RpcCall(proc)
        while not r.at_end() and r.data[r.pos] not in (0xFF, 0xFE):
            name = r.b_varchar()
            status = r.byte()
            if status & 0x08:
                raise ProtocolError("encrypted parameters (Always Encrypted) are not supported")
            type_id = r.byte()
            value = read_typed_value(r, type_id)
            call.params.append(RpcParam(name, value, bool(status & 0x01), type_id))
        calls.append(call)
        if not r.at_end():
            r.byte()  # the batch separator
    return calls


_FIXED = {
    0x1F: (0, None),  # NULLTYPE
    0x30: (1, "B"),  # INT1 (tinyint, unsigned)
    0x32: (1, "?"),  # BIT
    0x34: (2, "h"),  # INT2
    0x38: (4, "i"),  # INT4
    0x7F: (8, "q"),  # INT8
    0x3B: (4, "f"),  # FLT4
    0x3E: (8, "d"),  # FLT8
}
_MONEY, _MONEY4, _DATETIME, _DATETIM4 = 0x3C, 0x7A, 0x3D, 0x3A
_BYTELEN = {0x24, 0x26, 0x68, 0x6D, 0x6E, 0x6F, 0x25, 0x2D, 0x2F, 0x27}
_DECIMALS = {0x37, 0x3F, 0x6A, 0x6C}
_DATEN, _TIMEN, _DATETIME2N, _DATETIMEOFFSETN = 0x28, 0x29, 0x2A, 0x2B
_USHORTLEN_BIN = {0xA5, 0xAD}  # BIGVARBINARY, BIGBINARY
_USHORTLEN_CHAR = {0xA7, 0xAF}  # BIGVARCHAR, BIGCHAR
_USHORTLEN_NCHAR = {0xE7, 0xEF}  # NVARCHAR, NCHAR
_TEXT, _NTEXT, _IMAGE = 0x23, 0x63, 0x22
_BASE_1900 = datetime(1900, 1, 1)


def read_typed_value(r: Reader, type_id: int) -> object:
    """TYPE_INFO then the value (MS-TDS 2.2.5.6 / 2.2.6.6 "ParamLenData") of one RPC parameter."""
    if type_id in _FIXED:
        size, fmt = _FIXED[type_id]
        return None if fmt is None else r.unpack(fmt)
    if type_id in (_MONEY, _MONEY4, _DATETIME, _DATETIM4):
        size = 8 if type_id in (_MONEY, _DATETIME) else 4
        return _fixed_special(type_id, r.take(size))
    if type_id in _BYTELEN:
        r.byte()  # max length
        n = r.byte()
        return None if n == 0 else _bytelen_value(type_id, r.take(n))
    if type_id in _DECIMALS:
        r.byte()
        r.byte()  # precision
        scale = r.byte()
        n = r.byte()
        return None if n == 0 else _decimal(r.take(n), scale)
    if type_id == _DATEN:
        n = r.byte()
        return None if n == 0 else _date(r.take(n))
    if type_id in (_TIMEN, _DATETIME2N, _DATETIMEOFFSETN):
        scale = r.byte()
        n = r.byte()
        return None if n == 0 else _time_family(type_id, scale, r.take(n))
    if type_id in _USHORTLEN_BIN or type_id in _USHORTLEN_CHAR or type_id in _USHORTLEN_NCHAR:
        max_len = r.ushort()
        if type_id not in _USHORTLEN_BIN:
            r.take(5)  # COLLATION
        raw = _read_plp(r) if max_len == 0xFFFF else _read_ushort_data(r)
        return None if raw is None else _decode_chars(type_id, raw)
    if type_id in (_TEXT, _NTEXT, _IMAGE):
        r.unpack("I")  # max length
        if type_id != _IMAGE:
            r.take(5)  # COLLATION
        n = r.unpack("I")
        if n == 0xFFFFFFFF:
            return None
        raw = r.take(n)
        return raw if type_id == _IMAGE else raw.decode("utf-16-le" if type_id == _NTEXT else "cp1252")
    raise ProtocolError(f"unsupported parameter data type 0x{type_id:02X}")


def _read_ushort_data(r: Reader) -> bytes | None:
    n = r.ushort()
    return None if n == 0xFFFF else r.take(n)


def _read_plp(r: Reader) -> bytes | None:
    """PLP_BODY (MS-TDS 2.2.5.2.3): ULONGLONG length (all ones = NULL), then chunks to a 0 chunk."""
    total = r.unpack("Q")
    if total == 0xFFFFFFFFFFFFFFFF:
        return None
    parts = []
    while True:
        n = r.unpack("I")
        if n == 0:
            return b"".join(parts)
        parts.append(r.take(n))


def _decode_chars(type_id: int, raw: bytes) -> object:
    if type_id in _USHORTLEN_NCHAR:
        return raw.decode("utf-16-le")
    if type_id in _USHORTLEN_CHAR:
        return raw.decode("cp1252")
    return raw


def _fixed_special(type_id: int, raw: bytes) -> object:
    if type_id == _MONEY:
        hi, lo = struct.unpack("<iI", raw)
        return Decimal((hi << 32) | lo).scaleb(-4)
    if type_id == _MONEY4:
        return Decimal(struct.unpack("<i", raw)[0]).scaleb(-4)
    if type_id == _DATETIME:
        days, ticks = struct.unpack("<iI", raw)  # days since 1900-01-01, 1/300 s since midnight
        return _BASE_1900 + timedelta(days=days, microseconds=round(ticks * 10_000 / 3))
    days, minutes = struct.unpack("<HH", raw)  # DATETIM4: smalldatetime
    return _BASE_1900 + timedelta(days=days, minutes=minutes)


def _bytelen_value(type_id: int, raw: bytes) -> object:
    n = len(raw)
    if type_id == 0x24:  # GUID, stored with its first three fields little-endian
        return uuid.UUID(bytes_le=raw)
    if type_id == 0x26:  # INTN: 1 byte is tinyint (unsigned), the others signed
        return raw[0] if n == 1 else int.from_bytes(raw, "little", signed=True)
    if type_id == 0x68:  # BITN
        return bool(raw[0])
    if type_id == 0x6D:  # FLTN
        return struct.unpack("<f" if n == 4 else "<d", raw)[0]
    if type_id == 0x6E:  # MONEYN
        return _fixed_special(_MONEY if n == 8 else _MONEY4, raw)
    if type_id == 0x6F:  # DATETIMN
        return _fixed_special(_DATETIME if n == 8 else _DATETIM4, raw)
    if type_id in (0x2F, 0x27):  # legacy CHAR/VARCHAR
        return raw.decode("cp1252")
    return raw  # legacy BINARY/VARBINARY


def _decimal(raw: bytes, scale: int) -> Decimal:
    """DECIMALN/NUMERICN (MS-TDS 2.2.5.5.1.5): a sign byte (1 = positive), then the unscaled
    magnitude little-endian."""
    magnitude = int.from_bytes(raw[1:], "little")
    return Decimal(magnitude if raw[0] else -magnitude).scaleb(-scale)


def _date(raw: bytes) -> date:
    return date.fromordinal(date(1, 1, 1).toordinal() + int.from_bytes(raw[:3], "little"))


def _time(raw: bytes, scale: int) -> time:
    """TIME(n): units of 10**-n seconds since midnight in 3 to 5 bytes."""
    units = int.from_bytes(raw, "little")
    micros = units * 10**6 // 10**scale if scale <= 6 else units // 10 ** (scale - 6)
    seconds, micros = divmod(micros, 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return time(hours, minutes, seconds, micros)


def _time_family(type_id: int, scale: int, raw: bytes) -> object:
    time_len = 3 if scale <= 2 else 4 if scale <= 4 else 5
    if type_id == _TIMEN:
        return _time(raw, scale)
    moment = datetime.combine(_date(raw[time_len : time_len + 3]), _time(raw[:time_len], scale))
    if type_id == _DATETIME2N:
        return moment
    # DATETIMEOFFSETN: the date and time are UTC, then a signed offset in minutes.
    (offset,) = struct.unpack("<h", raw[time_len + 3 : time_len + 5])
    tz = timezone(timedelta(minutes=offset))
    return (moment + timedelta(minutes=offset)).replace(tzinfo=tz)


def declared_names(declaration: str) -> list[str]:
    """Parameter names of an sp_executesql/sp_prepare @params string, in order: "@P1 int,
    @P2 decimal(10,2) OUTPUT" -> ["@P1", "@P2"] (commas inside parentheses do not split)."""
    names, depth, current = [], 0, []
    for ch in declaration + ",":
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            item = "".join(current).strip()
            if item:
                names.append(item.split()[0])
            current = []
        else:
            current.append(ch)
    return names


@dataclass
class TransactionRequest:
    """A Transaction Manager request (MS-TDS 2.2.6.9): its type and, for COMMIT/ROLLBACK,
    whether a new transaction begins right after (fBeginXact)."""

    kind: int
    descriptor: int
    name: str = ""
    begin_after: bool = False


def parse_transaction_request(data: bytes) -> TransactionRequest:
    start, descriptor = skip_all_headers(data)
    r = Reader(data, start)
    kind = r.ushort()
    req = TransactionRequest(kind, descriptor)
    if kind == TM_BEGIN_XACT:
        r.byte()  # ISOLATION_LEVEL
        req.name = r.take(r.byte()).decode("utf-16-le")  # BEGIN_XACT_NAME is a B_VARBYTE
    elif kind in (TM_COMMIT_XACT, TM_ROLLBACK_XACT):
        req.name = r.take(r.byte()).decode("utf-16-le")
        if not r.at_end():
            req.begin_after = bool(r.byte() & 0x01)
    return req
