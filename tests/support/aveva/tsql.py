"""How the emulator reads T-SQL: parsed by sqlglot, History's extension predicates taken out.

A query on AVEVA's ``History`` extension table is answered in two steps, as SQL Server does with the
Historian's OLE DB provider: the provider gets the tag list, the time window and the ``ww*``
retrieval options from the WHERE clause and *retrieves* rows (:mod:`.retrieval`); SQL Server then
applies the rest of the statement (other predicates such as ``Quality <> 133``, GROUP BY, the select
list) to those rows. :func:`split_history_query` does the first part; the rest runs on SQLite after
sqlglot transpiles it. Statements arrive as the drivers send them: literals substituted by pymssql,
``@P1``-style parameters from RPC calls (substituted here by :func:`bind`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import sqlglot
from sqlglot import exp

from tests.support.aveva.retrieval import MODES, VERSIONS, Request
from tests.support.tds.backend import SYNTAX_ERROR, SqlError

HISTORIAN_ERROR = 50000  # errors the Historian's provider raises (a user error number)
_OPTIONS = {"wwretrievalmode", "wwversion", "wwtimezone", "wwcyclecount", "wwresolution"}


def parse(sql: str) -> list[exp.Expression]:
    try:
        return [s for s in sqlglot.parse(sql, read="tsql") if s is not None]
    except sqlglot.errors.ParseError as err:
        raise SqlError(SYNTAX_ERROR, f"Incorrect syntax: {str(err).splitlines()[0]}", severity=15) from err


def bind(statement: exp.Expression, params: Mapping[str, object]) -> exp.Expression:
    """Replace ``@name`` parameters by literals of their values."""
    if not params:
        return statement
    lowered = {k.lstrip("@").lower(): v for k, v in params.items()}

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Parameter) and not isinstance(node.this, exp.Parameter):
            name = node.name.lower()
            if name in lowered:
                return literal(lowered[name])
        return node

    return statement.transform(replace)


def literal(value: object) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Literal.number(int(value))
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, datetime | date):
        return exp.Literal.string(
            value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
        )
    return exp.Literal.string(str(value))


def table_name(table: exp.Table) -> str:
    return table.name.lower()


def history_table(select: exp.Select) -> exp.Table | None:
    """The ``History`` table a SELECT reads (any qualification: dbo.History, Runtime.dbo.History)."""
    for table in select.find_all(exp.Table):
        if table_name(table) == "history":
            return table
    return None


@dataclass
class HistoryQuery:
    request: Request
    residual: exp.Select  # the statement with the extension predicates removed, FROM History unqualified


def split_history_query(select: exp.Select) -> HistoryQuery:
    """Take the retrieval request out of a History SELECT's WHERE clause (only its top-level ANDs)."""
    where = select.args.get("where")
    conjuncts = list(_flatten_and(where.this)) if where is not None else []
    tags: list[str] | None = None
    start = end = None
    start_inclusive = end_inclusive = True
    options: dict[str, object] = {}
    residual = []
    for cond in conjuncts:
        if (
            isinstance(cond, exp.Between)
            and isinstance(cond.this, exp.Column)
            and cond.this.name.lower() == "datetime"
        ):
            low, high = _value(cond.args["low"]), _value(cond.args["high"])
            if low is not _NOT_LITERAL and high is not _NOT_LITERAL:  # both ends inclusive
                start, end, start_inclusive, end_inclusive = _datetime(low), _datetime(high), True, True
                continue
        column, op, value = _comparison(cond)
        name = column.lower() if column else None
        if name == "tagname" and op in ("eq", "in"):
            tags = [str(v) for v in (value if isinstance(value, list) else [value])]
        elif name == "datetime" and op in ("gt", "gte", "lt", "lte", "eq"):
            instant = _datetime(value)
            if op in ("gt", "gte", "eq"):
                start, start_inclusive = instant, op != "gt"
            if op in ("lt", "lte", "eq"):
                end, end_inclusive = instant, op != "lt"
        elif name in _OPTIONS and op == "eq":
            options[name] = value
        else:
            residual.append(cond)
    if not tags:
        raise SqlError(
            HISTORIAN_ERROR,
            "A query on History must name its tags (TagName = ... or TagName IN (...)).",
            severity=16,
        )
    mode = _option(options, "wwretrievalmode", "Delta", MODES)
    version = _option(options, "wwversion", "Latest", VERSIONS)
    request = Request(
        tags=tuple(dict.fromkeys(tags)),
        start=start,
        end=end,
        start_inclusive=start_inclusive,
        end_inclusive=end_inclusive,
        mode=mode,
        version=version,
        time_zone=str(options["wwtimezone"]) if options.get("wwtimezone") else None,
        cycle_count=int(options["wwcyclecount"]) if options.get("wwcyclecount") else None,
        resolution_ms=int(options["wwresolution"]) if options.get("wwresolution") else None,
    )
    rest = select.copy()
    rest.set("where", exp.Where(this=exp.and_(*residual)) if residual else None)
    for table in rest.find_all(exp.Table):
        if table_name(table) == "history":
            table.set("db", None)
            table.set("catalog", None)
    return HistoryQuery(request, rest)


def to_sqlite(statement: exp.Expression) -> str:
    """The statement in SQLite's dialect, with the T-SQL hour bucket the provider's counts use
    (``DATEADD(hour, DATEDIFF(hour, 0, x), 0)``) as SQLite's ``strftime``."""

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.National):  # N'...': SQLite's strings are Unicode already
            return exp.Literal.string(node.this)
        if isinstance(node, exp.DateAdd) and isinstance(node.expression, exp.DateDiff):
            inner = node.expression
            if str(node.unit).lower() == "hour" and str(inner.unit).lower() == "hour":
                return exp.func("strftime", exp.Literal.string("%Y-%m-%d %H:00:00"), inner.this)
        return node

    return statement.transform(rewrite).sql("sqlite")


def _flatten_and(node: exp.Expression):
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.And):
        yield from _flatten_and(node.this)
        yield from _flatten_and(node.expression)
    else:
        yield node


_OPS = {exp.EQ: "eq", exp.GT: "gt", exp.GTE: "gte", exp.LT: "lt", exp.LTE: "lte"}
_FLIPPED = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte", "eq": "eq"}


def _comparison(cond: exp.Expression) -> tuple[str | None, str | None, object]:
    """``(column, op, value)`` of ``column <op> literal`` (either side) or ``column IN (literals)``."""
    if isinstance(cond, exp.In) and isinstance(cond.this, exp.Column) and not cond.args.get("query"):
        values = [_value(e) for e in cond.expressions]
        if all(v is not _NOT_LITERAL for v in values):
            return cond.this.name, "in", values
    op = _OPS.get(type(cond))
    if op:
        left, right = cond.this, cond.expression
        if isinstance(left, exp.Column) and _value(right) is not _NOT_LITERAL:
            return left.name, op, _value(right)
        if isinstance(right, exp.Column) and _value(left) is not _NOT_LITERAL:
            return right.name, _FLIPPED[op], _value(left)
    return None, None, None


_NOT_LITERAL = object()


def _value(node: exp.Expression) -> object:
    if isinstance(node, exp.National):
        return node.this
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else (float(node.this) if "." in node.this else int(node.this))
    if isinstance(node, exp.Cast | exp.TryCast) and node.this is not None:
        return _value(node.this)
    if isinstance(node, exp.Neg):
        inner = _value(node.this)
        return -inner if isinstance(inner, int | float) else _NOT_LITERAL
    return _NOT_LITERAL


def _datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value).strip().replace("T", " ")
    if "." in text:  # DATETIME2(7) literals: Python reads at most 6 fractional digits
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError as err:
        raise SqlError(
            241, f"Conversion failed when converting date and/or time from character string ({value!r})."
        ) from err


def _option(options: Mapping[str, object], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = options.get(key)
    if value is None:
        return default
    for name in allowed:
        if str(value).lower() == name.lower():
            return name
    raise SqlError(
        HISTORIAN_ERROR, f"{key} {value!r} is not supported by the Historian emulator ({', '.join(allowed)})."
    )
