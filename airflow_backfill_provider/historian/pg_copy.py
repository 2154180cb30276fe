"""PostgreSQL's ``COPY ... TO STDOUT`` as a readable file for pyarrow's CSV reader. No Airflow import."""

from __future__ import annotations


class CopyOut:
    """``COPY ... TO STDOUT`` on a psycopg connection, as a readable binary file for pyarrow's CSV
    reader.

    It talks to libpq directly (psycopg's public ``pgconn``), since psycopg's ``Copy.read()`` goes
    through its generic wait machinery once per row. Here rows already received are taken in a
    tight loop, and the thread waits on the socket (without the GIL) only when none is left. Each
    row is copied at once, so libpq frees its buffer before the next.
    """

    def __init__(self, conn, sql: str) -> None:
        from psycopg import pq

        self._pgconn = conn.pgconn
        self._poll = None
        self._block = bytearray()
        self._done = False
        self.closed = False
        self._pgconn.send_query(sql.encode())
        self._check(self._result(), pq.ExecStatus.COPY_OUT)

    def readable(self) -> bool:
        return True

    def at_end(self) -> bool:
        """True when the COPY sends no row at all (reads ahead at most one row)."""
        if not self._block and not self._done:
            self._fill(1)
        return not self._block

    def read(self, size: int = -1) -> bytes:
        limit = size if size > 0 else 1 << 62
        self._fill(limit)
        block = self._block
        if len(block) <= limit:
            out = bytes(block)
            block.clear()
        else:  # the CSV reader finds row boundaries itself; keep back what overflowed (< 1 row)
            with memoryview(block) as view:
                out = bytes(view[:limit])
            del block[:limit]
        return out

    def _fill(self, limit: int) -> None:
        from psycopg import pq

        get, block = self._pgconn.get_copy_data, self._block
        while not self._done and len(block) < limit:
            nbytes, row = get(1)  # async: 0 means nothing received yet
            if nbytes > 0:
                block += row
            elif nbytes == 0:
                self._wait()
            else:  # -1: the COPY is over; its final result tells whether it succeeded
                self._check(self._result(), pq.ExecStatus.COMMAND_OK)
                while self._pgconn.get_result() is not None:
                    pass
                self._done = True

    def _wait(self) -> None:
        import select

        if self._poll is None:  # poll, not select: a task process may hold more than 1,024 files
            self._poll = select.poll()
            self._poll.register(self._pgconn.socket, select.POLLIN)
        self._poll.poll()  # releases the GIL
        self._pgconn.consume_input()

    def _result(self):
        while self._pgconn.is_busy():
            self._wait()
        return self._pgconn.get_result()

    def _check(self, result, expected) -> None:
        import psycopg
        from psycopg import pq

        if result is not None and result.status == expected:
            return
        if result is None or result.status != pq.ExecStatus.FATAL_ERROR:
            raise psycopg.OperationalError(
                f"COPY failed: {self._pgconn.error_message.decode(errors='replace').strip()}"
            )
        raise psycopg.errors.error_from_result(result, encoding="utf-8")

    def close(self) -> None:
        self.closed = True
