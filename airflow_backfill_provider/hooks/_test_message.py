"""Wording shared by the hooks' ``test_connection()`` messages."""

from __future__ import annotations


def untransient(message: str, conn_id: str) -> str:
    """``message`` without the connection's id: Airflow's Test button runs a hook on a copy of the
    connection under a random id, which would only puzzle the reader."""
    return message.replace(f" (connection {conn_id!r})", "").replace(
        f"connection {conn_id!r}", "this connection"
    )
