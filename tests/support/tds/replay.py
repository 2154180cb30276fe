"""Replay mode: a backend that answers with one pre-encoded result, streamed at socket speed.

For benchmarks of the drivers' read path the endpoint must not be the bottleneck, so the result is
encoded once (:func:`~tests.support.tds.tokens.encode_result_chunks`) and every matching query gets
the same bytes, sent in large ``sendall`` calls with no per-row Python work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .backend import PreEncoded, ResultSet, Session
from .tokens import encode_result_chunks


class ReplayBackend:
    """Accepts any login and answers every query with the same :class:`PreEncoded` result.

    ``result`` is a ResultSet (encoded once here) or already encoded bytes / token-aligned chunks.
    With ``match``, only statements containing that text (case-insensitive) get the replay; the
    others (a driver's own connect-time statements) get an empty success, so a driver that asks
    e.g. ``SELECT @@version`` on connect does not read the big result by mistake.
    """

    def __init__(
        self,
        result: ResultSet | bytes | Sequence[bytes],
        *,
        database: str = "Runtime",
        match: str | None = None,
    ) -> None:
        if isinstance(result, ResultSet):
            self.chunks: list[bytes] = list(encode_result_chunks(result))
        elif isinstance(result, bytes | bytearray | memoryview):
            self.chunks = [bytes(result)]
        else:
            self.chunks = list(result)
        self.database = database
        self.match = match.lower() if match else None
        self.executed = 0

    def login(self, user: str, password: str, database: str | None) -> str:
        return database or self.database

    def execute(
        self, sql: str, params: Mapping[str, object], session: Session
    ) -> Iterable[ResultSet | PreEncoded]:
        if self.match is not None and self.match not in sql.lower():
            return [ResultSet()]
        self.executed += 1
        return [PreEncoded(self.chunks)]
