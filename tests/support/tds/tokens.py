"""Encoding of the server's token stream (MS-TDS 2.2.7, "Packet Data Token Stream Definition").

Everything a TDS 7.4 server sends after the PRELOGIN reply is a sequence of tokens: LOGINACK,
ENVCHANGE, INFO/ERROR, COLMETADATA, ROW/NBCROW, DONE*, RETURNSTATUS, RETURNVALUE. This module turns
Python values into those bytes and nothing else (no sockets), so the replay mode can pre-encode a
whole result once and the live mode can encode row by row with the same code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, time

from .backend import ColumnSpec, ResultSet

# Token types (MS-TDS 2.2.4.2 / 2.2.7).
COLMETADATA = 0x81
ERROR = 0xAA
INFO = 0xAB
RETURNVALUE = 0xAC
LOGINACK = 0xAD
FEATUREEXTACK = 0xAE
ROW = 0xD1
NBCROW = 0xD2
ENVCHANGE = 0xE3
DONE = 0xFD
DONEPROC = 0xFE
DONEINPROC = 0xFF
RETURNSTATUS = 0x79

# DONE status bits (MS-TDS 2.2.7.6 "DONE").
DONE_FINAL = 0x00
DONE_MORE = 0x01
DONE_ERROR = 0x02
DONE_INXACT = 0x04
DONE_COUNT = 0x10
DONE_ATTN = 0x20
DONE_SRVERROR = 0x100

# CurCmd of a DONE after a SELECT (SQL Server reports 0xC1); other statements report 0.
CURCMD_SELECT = 0xC1

# ENVCHANGE types (MS-TDS 2.2.7.9 "ENVCHANGE").
ENV_DATABASE = 1
ENV_LANGUAGE = 2
ENV_PACKETSIZE = 4
ENV_COLLATION = 7
ENV_BEGIN_TRAN = 8
ENV_COMMIT_TRAN = 9
ENV_ROLLBACK_TRAN = 10
ENV_RESET_ACK = 18

# Data types (MS-TDS 2.2.5.4 "Data Type Definitions").
INTNTYPE = 0x26
BITNTYPE = 0x68
FLTNTYPE = 0x6D
DATETIME2NTYPE = 0x2A
BIGVARCHRTYPE = 0xA7
NVARCHARTYPE = 0xE7

# SQL_Latin1_General_CP1_CI_AS as the 5-byte COLLATION rule (MS-TDS 2.2.5.1.2): LCID 0x0409 with
# the ignore-case/kana/width flags, then SortId 52. Clients decode VARCHAR data with its code page
# (1252), which is why varchar values are encoded as cp1252 below.
COLLATION = bytes((0x09, 0x04, 0xD0, 0x00, 0x34))
VARCHAR_CODEC = "cp1252"

PLP_NULL = 0xFFFFFFFFFFFFFFFF
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_DONE = struct.Struct("<BHHQ")
_EPOCH_ORDINAL = date(1, 1, 1).toordinal()


def b_varchar(text: str) -> bytes:
    """B_VARCHAR: a byte of character count, then UCS-2LE (MS-TDS 2.2.5.1.3)."""
    data = text.encode("utf-16-le")
    return bytes((len(data) // 2,)) + data


def us_varchar(text: str) -> bytes:
    """US_VARCHAR: a USHORT character count, then UCS-2LE."""
    data = text.encode("utf-16-le")
    return _U16.pack(len(data) // 2) + data


def done(status: int = DONE_FINAL, rowcount: int = 0, *, token: int = DONE, curcmd: int = 0) -> bytes:
    """DONE / DONEPROC / DONEINPROC (MS-TDS 2.2.7.6-8): status, CurCmd, 8-byte row count (TDS 7.2+)."""
    return _DONE.pack(token, status, curcmd, rowcount)


def envchange(kind: int, new: bytes, old: bytes) -> bytes:
    """ENVCHANGE with already-encoded new and old values (B_VARCHAR or B_VARBYTE by type)."""
    body = bytes((kind,)) + new + old
    return bytes((ENVCHANGE,)) + _U16.pack(len(body)) + body


def env_text(kind: int, new: str, old: str) -> bytes:
    """ENVCHANGE whose values are B_VARCHAR (database, language, packet size)."""
    return envchange(kind, b_varchar(new), b_varchar(old))


def env_bytes(kind: int, new: bytes, old: bytes) -> bytes:
    """ENVCHANGE whose values are B_VARBYTE (collation, transaction descriptors, reset ack)."""
    return envchange(kind, bytes((len(new),)) + new, bytes((len(old),)) + old)


def message(
    number: int, text: str, *, severity: int, state: int = 1, server: str = "", proc: str = "", line: int = 1
) -> bytes:
    """ERROR (severity >= 11) or INFO (below) token (MS-TDS 2.2.7.10 / 2.2.7.13)."""
    body = (
        _I32.pack(number)
        + bytes((state, severity))
        + us_varchar(text)
        + b_varchar(server)
        + b_varchar(proc)
        + _I32.pack(line)
    )
    token = ERROR if severity > 10 else INFO
    return bytes((token,)) + _U16.pack(len(body)) + body


def loginack(prog_name: str = "Microsoft SQL Server", version: tuple[int, int, int] = (16, 0, 1000)) -> bytes:
    """LOGINACK (MS-TDS 2.2.7.14): interface SQL_TSQL, TDS 7.4 (sent big-endian: 74 00 00 04)."""
    major, minor, build = version
    body = (
        bytes((1,))
        + bytes((0x74, 0x00, 0x00, 0x04))
        + b_varchar(prog_name)
        + bytes((major, minor))
        + build.to_bytes(2, "big")
    )
    return bytes((LOGINACK,)) + _U16.pack(len(body)) + body


def returnstatus(value: int) -> bytes:
    """RETURNSTATUS (MS-TDS 2.2.7.18): the stored procedure's return value."""
    return bytes((RETURNSTATUS,)) + _I32.pack(value)


def returnvalue_int(ordinal: int, name: str, value: int | None) -> bytes:
    """RETURNVALUE (MS-TDS 2.2.7.19) of an INT OUTPUT parameter, as sp_prepare's @handle."""
    data = b"\x00" if value is None else b"\x04" + _I32.pack(value)
    return (
        bytes((RETURNVALUE,))
        + _U16.pack(ordinal)
        + b_varchar(name)
        + b"\x01"  # Status: fByRefValue (an output parameter)
        + _U32.pack(0)  # UserType
        + _U16.pack(0x0001)  # Flags: nullable
        + bytes((INTNTYPE, 4))
        + data
    )


# --- COLMETADATA and row data (MS-TDS 2.2.7.4 "COLMETADATA", 2.2.7.19 "ROW", 2.2.7.15 "NBCROW") ---

_INT_SIZES = {"bigint": 8, "int": 4, "smallint": 2, "tinyint": 1}
_INT_FORMATS = {8: "<Bq", 4: "<Bi", 2: "<Bh", 1: "<BB"}


def type_info(col: ColumnSpec) -> bytes:
    """TYPE_INFO of one column (MS-TDS 2.2.5.6): the nullable variable-length form of each type."""
    kind = col.sql_type
    if kind in _INT_SIZES:
        return bytes((INTNTYPE, _INT_SIZES[kind]))
    if kind == "bit":
        return bytes((BITNTYPE, 1))
    if kind == "float":
        return bytes((FLTNTYPE, 8))
    if kind == "real":
        return bytes((FLTNTYPE, 4))
    if kind == "datetime2":
        return bytes((DATETIME2NTYPE, 7))
    if kind == "nvarchar":
        size = 0xFFFF if _is_max(col, 4000) else col.length * 2
        return bytes((NVARCHARTYPE,)) + _U16.pack(size) + COLLATION
    if kind == "varchar":
        size = 0xFFFF if _is_max(col, 8000) else col.length
        return bytes((BIGVARCHRTYPE,)) + _U16.pack(size) + COLLATION
    raise ValueError(f"unsupported column type {kind!r} for column {col.name!r}")


def _is_max(col: ColumnSpec, limit: int) -> bool:
    return col.length is None or col.length > limit


def colmetadata(columns: Sequence[ColumnSpec]) -> bytes:
    """COLMETADATA: count, then per column UserType (ULONG in 7.2+), Flags, TYPE_INFO, ColName."""
    out = bytearray((COLMETADATA,))
    out += _U16.pack(len(columns))
    for col in columns:
        out += _U32.pack(0)
        out += _U16.pack(0x0001 if col.nullable else 0x0000)  # fNullable
        out += type_info(col)
        out += b_varchar(col.name)
    return bytes(out)


Encoder = Callable[[object], bytes]


def _int_encoder(size: int) -> Encoder:
    pack = struct.Struct(_INT_FORMATS[size]).pack
    return lambda v: pack(size, int(v))


def _float_encoder(size: int) -> Encoder:
    pack = struct.Struct("<Bd" if size == 8 else "<Bf").pack
    return lambda v: pack(size, float(v))


def _bit(v: object) -> bytes:
    return b"\x01\x01" if v else b"\x01\x00"


_DT2 = struct.Struct("<BQ")


def _datetime2(v: object) -> bytes:
    # DATETIME2N with scale 7 (MS-TDS 2.2.5.5.1.8): 5 bytes of 100 ns units since midnight, then 3
    # bytes of days since 0001-01-01; both little-endian, so together one 8-byte integer.
    if isinstance(v, datetime):
        t: time = v.time()
        days = v.toordinal() - _EPOCH_ORDINAL
    elif isinstance(v, date):
        t, days = time(), v.toordinal() - _EPOCH_ORDINAL
    else:
        raise TypeError(f"datetime2 value must be a datetime, not {type(v).__name__}")
    ticks = ((t.hour * 3600 + t.minute * 60 + t.second) * 1_000_000 + t.microsecond) * 10
    return _DT2.pack(8, ticks | days << 40)


def _short_text(codec: str) -> Encoder:
    pack = _U16.pack

    def encode(v: object) -> bytes:
        data = str(v).encode(codec, "replace") if codec == VARCHAR_CODEC else str(v).encode(codec)
        return pack(len(data)) + data

    return encode


def _plp_text(codec: str) -> Encoder:
    # PLP (MS-TDS 2.2.5.2.3): ULONGLONG total length, chunks of ULONG length + data, a 0 terminator.
    def encode(v: object) -> bytes:
        data = str(v).encode(codec, "replace") if codec == VARCHAR_CODEC else str(v).encode(codec)
        if not data:
            return b"\x00" * 8 + b"\x00" * 4
        return len(data).to_bytes(8, "little") + _U32.pack(len(data)) + data + b"\x00\x00\x00\x00"

    return encode


def value_encoder(col: ColumnSpec) -> tuple[Encoder, bytes]:
    """The encoder of one column's non-NULL values and the bytes of its NULL in a ROW token."""
    kind = col.sql_type
    if kind in _INT_SIZES:
        return _int_encoder(_INT_SIZES[kind]), b"\x00"
    if kind == "bit":
        return _bit, b"\x00"
    if kind in ("float", "real"):
        return _float_encoder(8 if kind == "float" else 4), b"\x00"
    if kind == "datetime2":
        return _datetime2, b"\x00"
    if kind in ("nvarchar", "varchar"):
        codec = "utf-16-le" if kind == "nvarchar" else VARCHAR_CODEC
        if _is_max(col, 4000 if kind == "nvarchar" else 8000):
            return _plp_text(codec), PLP_NULL.to_bytes(8, "little")
        return _short_text(codec), b"\xff\xff"
    raise ValueError(f"unsupported column type {kind!r} for column {col.name!r}")


class RowEncoder:
    """Encodes rows of one result: ROW when no value is NULL, else NBCROW (null bitmap, NULLs
    omitted), which is what SQL Server does and is smaller for sparse rows."""

    def __init__(self, columns: Sequence[ColumnSpec]) -> None:
        self.columns = list(columns)
        pairs = [value_encoder(c) for c in self.columns]
        self._encoders = [p[0] for p in pairs]
        self._nulls = [p[1] for p in pairs]
        self._bitmap_len = (len(self.columns) + 7) // 8

    def metadata(self) -> bytes:
        return colmetadata(self.columns)

    def row(self, values: Sequence[object]) -> bytes:
        if len(values) != len(self._encoders):
            raise ValueError(f"row has {len(values)} values for {len(self._encoders)} columns")
        if None not in values:
            return b"\xd1" + b"".join([enc(v) for enc, v in zip(self._encoders, values, strict=True)])
        bitmap = 0
        parts = []
        for i, (enc, v) in enumerate(zip(self._encoders, values, strict=True)):
            if v is None:
                bitmap |= 1 << i
            else:
                parts.append(enc(v))
        return b"\xd2" + bitmap.to_bytes(self._bitmap_len, "little") + b"".join(parts)


def encode_result_chunks(result: ResultSet, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """COLMETADATA, ROW/NBCROW... and a final DONE (with the row count), as chunks of about
    ``chunk_bytes`` that end on token boundaries: the server may stop between two chunks after an
    ATTENTION, so replayed results stay cancellable."""
    if not result.columns:
        status = DONE_FINAL if result.rowcount is None else DONE_COUNT
        yield done(status, result.rowcount or 0)
        return
    encoder = RowEncoder(result.columns)
    buf = bytearray(encoder.metadata())
    count = 0
    row = encoder.row
    for values in result.rows:
        buf += row(values)
        count += 1
        if len(buf) >= chunk_bytes:
            yield bytes(buf)
            buf.clear()
    buf += done(DONE_COUNT, count, curcmd=CURCMD_SELECT)
    yield bytes(buf)


def encode_result(result: ResultSet) -> bytes:
    """Pre-encode a whole :class:`ResultSet` for :class:`~tests.support.tds.backend.PreEncoded`
    (the replay mode): one bytes object, COLMETADATA + rows + DONE."""
    return b"".join(encode_result_chunks(result))
