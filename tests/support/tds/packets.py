"""TDS packets and the two login messages (MS-TDS 2.2.3 "Packets", 2.2.6.4 LOGIN7, 2.2.6.5 PRELOGIN).

A TDS message is one or more packets, each with an 8-byte header; the last packet of a message has
the EOM status bit. This module reads whole messages off a socket, writes a reply split into
packets of the negotiated size, and decodes/encodes PRELOGIN and LOGIN7, which are the only
messages that are not ALL_HEADERS + payload.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

# Packet types (MS-TDS 2.2.3.1.1 "Type").
SQL_BATCH = 1
RPC = 3
TABULAR_RESULT = 4
ATTENTION = 6
BULK_LOAD = 7
TRANSACTION_MANAGER = 14
LOGIN7 = 16
SSPI = 17
PRELOGIN = 18

# Packet status bits (MS-TDS 2.2.3.1.2 "Status").
STATUS_EOM = 0x01
STATUS_IGNORE = 0x02
STATUS_RESET_CONNECTION = 0x08
STATUS_RESET_CONNECTION_SKIP_TRAN = 0x10

HEADER = struct.Struct(">BBHHBB")  # Type, Status, Length, SPID, PacketID, Window (big-endian)
HEADER_SIZE = 8
DEFAULT_PACKET_SIZE = 4096
MAX_PACKET_SIZE = 32767

# PRELOGIN option tokens (MS-TDS 2.2.6.5).
PL_VERSION = 0x00
PL_ENCRYPTION = 0x01
PL_INSTOPT = 0x02
PL_THREADID = 0x03
PL_MARS = 0x04
PL_TRACEID = 0x05
PL_FEDAUTHREQUIRED = 0x06
PL_NONCEOPT = 0x07
PL_TERMINATOR = 0xFF

ENCRYPT_OFF = 0x00
ENCRYPT_ON = 0x01
ENCRYPT_NOT_SUP = 0x02
ENCRYPT_REQ = 0x03


class ConnectionClosed(Exception):
    """The peer closed the socket (or it was closed under us by stop())."""


@dataclass
class Message:
    """One client message: its packet type, the payload of all its packets joined, and whether its
    first packet asked for a connection reset (connection pooling, MS-TDS 2.2.3.1.2)."""

    type: int
    data: bytes
    reset: bool = False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        buf += chunk
    return bytes(buf)


def read_message(sock: socket.socket) -> Message:
    """Read packets up to the one with EOM and return the message they carry."""
    parts = []
    first_status = None
    while True:
        ptype, status, length, _spid, _pid, _win = HEADER.unpack(_recv_exact(sock, HEADER_SIZE))
        if length < HEADER_SIZE:
            raise ConnectionClosed(f"bad packet length {length}")
        parts.append(_recv_exact(sock, length - HEADER_SIZE))
        if first_status is None:
            first_status = status
        if status & STATUS_EOM:
            break
    reset = bool(first_status & (STATUS_RESET_CONNECTION | STATUS_RESET_CONNECTION_SKIP_TRAN))
    return Message(ptype, b"".join(parts), reset)


def packetize(
    payload: bytes | memoryview, packet_size: int, spid: int, first_id: int, eom: bool
) -> tuple[bytes, int]:
    """Wrap ``payload`` in packets of at most ``packet_size`` bytes (header included), the last one
    with EOM when ``eom``; returns the bytes to send and the next PacketID (which wraps at 256)."""
    step = packet_size - HEADER_SIZE
    view = memoryview(payload)
    out = []
    pid = first_id
    n = len(view)
    offsets = range(0, n, step) if n else [0]
    last = offsets[-1]
    pack = HEADER.pack
    for off in offsets:
        chunk = view[off : off + step]
        status = STATUS_EOM if (eom and off == last) else 0
        out.append(pack(TABULAR_RESULT, status, len(chunk) + HEADER_SIZE, spid, pid, 0))
        out.append(chunk)
        pid = (pid + 1) & 0xFF
    return b"".join(out), pid


# --- PRELOGIN (MS-TDS 2.2.6.5) ---


def parse_prelogin(data: bytes) -> dict[int, bytes]:
    """Option token -> option data. The option table is (token, USHORT offset, USHORT length)
    big-endian entries ended by 0xFF; offsets count from the start of the payload."""
    options: dict[int, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos] != PL_TERMINATOR:
        token, offset, length = struct.unpack_from(">BHH", data, pos)
        options[token] = data[offset : offset + length]
        pos += 5
    return options


def build_prelogin(
    encryption: int, *, version: tuple[int, int, int] = (16, 0, 1000), thread_id: int = 0
) -> bytes:
    """The server's PRELOGIN response: VERSION, ENCRYPTION, INSTOPT (0: instance name matched),
    THREADID and MARS (off). FreeTDS only keeps TDS 7.4 when the reply carries the MARS option."""
    major, minor, build = version
    options = [
        (PL_VERSION, bytes((major, minor)) + build.to_bytes(2, "big") + b"\x00\x00"),
        (PL_ENCRYPTION, bytes((encryption,))),
        (PL_INSTOPT, b"\x00"),
        (PL_THREADID, thread_id.to_bytes(4, "big")),
        (PL_MARS, b"\x00"),
    ]
    table_size = 5 * len(options) + 1
    table = bytearray()
    body = bytearray()
    for token, value in options:
        table += struct.pack(">BHH", token, table_size + len(body), len(value))
        body += value
    table.append(PL_TERMINATOR)
    return bytes(table + body)


# --- LOGIN7 (MS-TDS 2.2.6.4) ---

_LOGIN_FIXED = struct.Struct("<IIIIII4BiI")
# OffsetLength pairs (USHORT offset, USHORT length in characters) after the 36-byte fixed part.
_OFFSETS = (
    "hostname",
    "username",
    "password",
    "appname",
    "servername",
    "extension",
    "library",
    "language",
    "database",
)


@dataclass
class Login7:
    """The fields of a LOGIN7 message the endpoint uses (never log ``password``)."""

    tds_version: int
    packet_size: int
    client_pid: int
    hostname: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    appname: str = ""
    servername: str = ""
    library: str = ""
    language: str = ""
    database: str = ""
    option_flags2: int = 0
    feature_ids: list[int] = field(default_factory=list)

    @property
    def integrated_security(self) -> bool:
        return bool(self.option_flags2 & 0x80)  # fIntSecurity


def unscramble_password(data: bytes) -> str:
    """Undo LOGIN7's password obfuscation: the client swapped each byte's nibbles and then XORed
    it with 0xA5 (MS-TDS 2.2.6.4, "Password"), so XOR first, then swap back."""
    out = bytearray()
    for b in data:
        b ^= 0xA5
        out.append(((b & 0x0F) << 4) | (b >> 4))
    return out.decode("utf-16-le")


def parse_login7(data: bytes) -> Login7:
    (_length, version, packet_size, _prog_ver, pid, _conn_id, _f1, f2, _tf, f3, _tz, _lcid) = (
        _LOGIN_FIXED.unpack_from(data, 0)
    )
    login = Login7(tds_version=version, packet_size=packet_size, client_pid=pid, option_flags2=f2)
    pos = 36
    for name in _OFFSETS:
        offset, length = struct.unpack_from("<HH", data, pos)
        pos += 4
        if name == "extension":
            # ibExtension points at a DWORD holding the offset of FeatureExt (when fExtension).
            if f3 & 0x10 and length >= 4:
                login.feature_ids = _feature_ids(data, struct.unpack_from("<I", data, offset)[0])
            continue
        raw = data[offset : offset + 2 * length]
        if name == "password":
            setattr(login, name, unscramble_password(raw))
        else:
            setattr(login, name, raw.decode("utf-16-le"))
    return login


def _feature_ids(data: bytes, pos: int) -> list[int]:
    """FeatureExt (MS-TDS 2.2.6.4): (BYTE FeatureId, DWORD length, data)* then 0xFF."""
    ids = []
    while 0 < pos < len(data) and data[pos] != 0xFF:
        ids.append(data[pos])
        (length,) = struct.unpack_from("<I", data, pos + 1)
        pos += 5 + length
    return ids
