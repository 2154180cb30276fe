"""The system procedures drivers call through RPC requests (MS-TDS 2.2.6.6), run on the backend.

sp_executesql(@stmt, @params, values...), sp_prepexec(@handle OUTPUT, @params, @stmt, values...),
sp_prepare(@handle OUTPUT, @params, @stmt[, @options]), sp_execute(@handle, values...) and
sp_unprepare(@handle). The reply of each call: the statement's results with DONEINPROC, then
RETURNSTATUS, RETURNVALUE for the OUTPUT @handle, and DONEPROC (MS-TDS 3.2.5.x "RPC response").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import tokens as T
from .backend import SqlError
from .requests import ProtocolError, RpcCall, RpcParam, declared_names

if TYPE_CHECKING:
    from .handlers import Reply, RequestHandler

log = logging.getLogger(__name__)


def _names(values: list[RpcParam], declaration: str) -> list[str]:
    """Name the values: their own names when the driver sent them, else the names of the @params
    declaration in order (ODBC drivers send them unnamed), else @P1, @P2..."""
    declared = declared_names(declaration)
    out = []
    for i, p in enumerate(values):
        name = p.name or (declared[i] if i < len(declared) else f"@P{i + 1}")
        out.append(name if name.startswith("@") else "@" + name)
    return out


def _bind(values: list[RpcParam], declaration: str) -> dict[str, object]:
    return {name: p.value for name, p in zip(_names(values, declaration), values, strict=True)}


def _types(values: list[RpcParam], declaration: str) -> dict[str, int]:
    return {name: p.type_id for name, p in zip(_names(values, declaration), values, strict=True)}


def _text(p: RpcParam | None) -> str:
    return "" if p is None or p.value is None else str(p.value)


def _handle(p: RpcParam | None) -> int:
    if p is None or not isinstance(p.value, int):
        raise SqlError(8179, "Could not find prepared statement with handle 0.")
    return p.value


def run_rpc_call(h: RequestHandler, reply: Reply, call: RpcCall, more: int) -> None:
    """Run one RPCReqBatch and write its reply up to and including DONEPROC."""
    proc = call.proc.lower().rsplit(".", 1)[-1]
    ps = call.params
    at = ps.__getitem__
    outputs: list[tuple[int, RpcParam, int]] = []  # (ordinal, parameter, value) for RETURNVALUE
    try:
        if proc == "sp_executesql":
            stmt, decl = _text(at(0) if ps else None), _text(ps[1] if len(ps) > 1 else None)
            params, types = _bind(ps[2:], decl), _types(ps[2:], decl)
        elif proc in ("sp_prepexec", "sp_prepare"):
            if len(ps) < 3:
                raise SqlError(8144, f"Procedure or function {proc} has too many arguments specified.")
            decl, stmt = _text(ps[1]), _text(ps[2])
            handle = h._next_handle
            h._next_handle += 1
            names = declared_names(decl)
            h.prepared[handle] = (stmt, names)
            outputs.append((0, ps[0], handle))
            if proc == "sp_prepare":
                h._record("rpc:sp_prepare", stmt, {})
                log.debug("spid %d: sp_prepare #%d %s", h.conn.spid, handle, stmt[:300])
                _close(h, reply, outputs, T.DONE_FINAL, 0, more)
                return
            params, types = _bind(ps[3:], decl), _types(ps[3:], decl)
        elif proc == "sp_execute":
            handle = _handle(ps[0] if ps else None)
            if handle not in h.prepared:
                raise SqlError(8179, f"Could not find prepared statement with handle {handle}.")
            stmt, names = h.prepared[handle]
            params, types = _bind(ps[1:], ", ".join(names)), _types(ps[1:], ", ".join(names))
        elif proc == "sp_unprepare":
            h.prepared.pop(_handle(ps[0] if ps else None), None)
            h._record("rpc:sp_unprepare", "", {})
            _close(h, reply, [], T.DONE_FINAL, 0, more)
            return
        elif proc.startswith("sp_cursor"):
            raise SqlError(16945, f"{proc}: server cursors are not supported by this endpoint.")
        else:  # any other procedure: the backend sees EXEC name with the named parameters
            stmt = f"EXEC {call.proc}"
            params, types = _bind(ps, ""), _types(ps, "")
    except SqlError as exc:
        reply.write(h.error_token(exc))
        reply.write(T.done(T.DONE_ERROR | more, token=T.DONEPROC))
        return
    except (IndexError, TypeError) as exc:
        raise ProtocolError(f"malformed {proc} call: {exc}") from exc
    log.debug(
        "spid %d: RPC %s %s params=%s",
        h.conn.spid,
        proc,
        stmt[:300],
        {k: _brief(v) for k, v in params.items()},
    )
    h._record(f"rpc:{proc}", stmt, params, types)
    status, count, _curcmd = h.statement(reply, stmt, params, token=T.DONEINPROC)
    if status & T.DONE_ERROR:
        reply.write(T.done(T.DONE_ERROR | more, token=T.DONEPROC))
        return
    if status != T.DONE_FINAL or count:
        reply.write(T.done(status | T.DONE_MORE, count, token=T.DONEINPROC, curcmd=_curcmd))
    _close(h, reply, outputs, T.DONE_FINAL, 0, more)


def _close(
    h: RequestHandler,
    reply: Reply,
    outputs: list[tuple[int, RpcParam, int]],
    status: int,
    count: int,
    more: int,
) -> None:
    reply.write(T.returnstatus(0))
    for ordinal, param, value in outputs:
        reply.write(T.returnvalue_int(ordinal, param.name, value))
    reply.write(T.done(status | more, count, token=T.DONEPROC))


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."
