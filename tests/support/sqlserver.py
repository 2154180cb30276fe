"""A SQL Server historian for tests: the AVEVA Historian emulator behind the TDS endpoint.

No SQL Server and no Historian can run here. :class:`SqlServerHistorian` is the closest real thing:
real drivers (pymssql, mssql-python) speak SQL Server's wire protocol (MS-TDS) to
:mod:`tests.support.tds`, and :mod:`tests.support.aveva` answers History queries by AVEVA's
documented retrieval rules from the values it stores. Rows a test expects are read from the store
directly (:meth:`HistorianStore.stored`), never through the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.aveva import HistorianEmulator, HistorianStore
from tests.support.tds import PreEncoded, ResultSet, Session, SqlError, TdsServer, encode_result_chunks

READER, READER_PASSWORD = "historian_reader", "Rdr-p@ss;'w0rd"


class SqlServerHistorian:
    def __init__(self, store: HistorianStore, emulator: HistorianEmulator, server: TdsServer) -> None:
        self.store = store
        self.emulator = emulator
        self.server = server

    @property
    def port(self) -> int:
        return self.server.port

    def connection(self, *, password: str = READER_PASSWORD, database: str = "Runtime", **extra) -> dict:
        """An Airflow ``wonderware`` connection to this server, as for a real SQL Server."""
        return {
            "conn_type": "wonderware",
            "host": "127.0.0.1",
            "port": self.port,
            "login": READER,
            "password": password,
            "schema": database,
            # the endpoint speaks plain text (TDS's TLS is not implemented): encryption off
            "extra": {"retry_base_delay": 0.05, "encrypt": "no", **extra},
        }

    def connection_json(self, **kwargs) -> str:
        return json.dumps(self.connection(**kwargs))


class SlowHistory:
    """A fault of the emulator: every History query waits ``seconds`` before it answers."""

    def __init__(self, emulator: HistorianEmulator, seconds: float) -> None:
        self.emulator, self.seconds = emulator, seconds

    def __enter__(self):
        self.emulator.delay_seconds = self.seconds

    def __exit__(self, *exc):
        self.emulator.delay_seconds = 0.0


class RecordedReplay:
    """A backend that answers each distinct statement (text and parameters) once through ``inner``
    and then replays the TDS bytes of that answer: the Historian emulator computes rows in Python,
    so benchmarks record once and measure the drivers against a source at socket speed."""

    def __init__(self, inner: HistorianEmulator) -> None:
        self.inner = inner
        self.answers: dict[tuple, list[list[bytes]] | SqlError] = {}

    def login(self, user: str, password: str, database: str | None) -> str:
        return self.inner.login(user, password, database)

    def execute(self, sql: str, params, session: Session):
        key = (sql, tuple(sorted((k, repr(v)) for k, v in params.items())))
        if key not in self.answers:
            try:
                results: list[ResultSet] = list(self.inner.execute(sql, params, session))
                self.answers[key] = [list(encode_result_chunks(r)) for r in results]
            except SqlError as err:
                self.answers[key] = err
        answer = self.answers[key]
        if isinstance(answer, SqlError):
            raise answer
        for chunks in answer:
            yield PreEncoded(chunks)


@contextmanager
def sqlserver_historian(
    directory: Path | str, config=None, *, server_zone: str = "UTC"
) -> Iterator[SqlServerHistorian]:
    """A running endpoint over a store in ``directory``, loaded from the simulator's ``config`` if given."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    store = HistorianStore(Path(directory) / "historian.db")
    if config is not None:
        store.load_simulation(config)
    emulator = HistorianEmulator(store, users={READER: READER_PASSWORD}, server_zone=server_zone)
    with TdsServer(emulator) as server:
        yield SqlServerHistorian(store, emulator, server)
