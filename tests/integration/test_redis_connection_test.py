"""Test of a ``redis`` connection (the sync's tag cache), against a throwaway ``redis-server`` that
asks for a password, as the documented one does.

The redis provider's ``RedisHook`` has no ``test_connection``; the provider's plugin gives it one in
the api-server (where the Test button runs): a PING with the connection's own settings.
"""

from __future__ import annotations

import json
import secrets
import sys

import pytest

from airflow_backfill_provider.testing.services import free_port, redis_server

PASSWORD = f"canary-redis-{secrets.token_hex(6)}"


@pytest.fixture(scope="module")
def redis():
    with redis_server(password=PASSWORD) as server:
        yield server


@pytest.fixture
def in_api_server():
    """The plugin acts only in an api-server process (one that imported the FastAPI app);
    ``RedisHook`` is left as it was found."""
    import airflow.api_fastapi.app  # noqa: F401
    from airflow.providers.redis.hooks.redis import RedisHook

    had_test = "test_connection" in vars(RedisHook)
    yield
    if not had_test and "test_connection" in vars(RedisHook):
        del RedisHook.test_connection


def _connection(monkeypatch, conn_id: str, **fields):
    from airflow.models.connection import Connection

    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "redis", **fields}))
    return Connection.get_connection_from_secrets(conn_id)


def test_redis_hook_has_no_test_of_its_own(redis, monkeypatch):
    """What Test said before the plugin, and says outside an api-server: the reason this plugin
    exists (this fails, and the plugin steps aside, once the redis provider ships its own test)."""
    from airflow.providers.redis.hooks.redis import RedisHook

    from airflow_backfill_provider.plugins import connection_test

    if vars(RedisHook).get("test_connection") is connection_test._redis_hook_test_connection:
        monkeypatch.delattr(RedisHook, "test_connection")  # the plugin's, from an earlier test
    conn = _connection(monkeypatch, "redis_plain", host="127.0.0.1", port=redis.port, password=PASSWORD)
    assert conn.test_connection() == (
        False,
        "Hook RedisHook doesn't implement or inherit test_connection method",
    )


def test_the_documented_redis_connection_answers_ping(redis, monkeypatch, in_api_server):
    from airflow_backfill_provider.plugins.connection_test import ConnectionTestPlugin

    ConnectionTestPlugin.on_load()
    conn = _connection(monkeypatch, "redis_default", host="127.0.0.1", port=redis.port, password=PASSWORD)
    ok, message = conn.test_connection()
    assert ok, message
    assert message.startswith("Redis ") and f"at 127.0.0.1:{redis.port} (db 0) answered PING." in message
    assert PASSWORD not in message


def test_a_wrong_password_is_refused_in_words(redis, monkeypatch, in_api_server):
    from airflow_backfill_provider.plugins.connection_test import apply_redis_test

    apply_redis_test()
    wrong = "canary-not-the-password"
    for conn_id, password in (("redis_wrong", wrong), ("redis_none", None)):
        fields = {"host": "127.0.0.1", "port": redis.port, **({"password": password} if password else {})}
        ok, message = _connection(monkeypatch, conn_id, **fields).test_connection()
        assert not ok
        assert f"Redis at 127.0.0.1:{redis.port} refused the credentials" in message, message
        assert "Fix the connection's Password" in message
        assert wrong not in message and PASSWORD not in message


def test_a_redis_that_is_down_is_named_with_the_reason(monkeypatch, in_api_server):
    from airflow_backfill_provider.plugins.connection_test import apply_redis_test

    apply_redis_test()
    port = free_port()  # nothing listens there
    ok, message = _connection(monkeypatch, "redis_down", host="127.0.0.1", port=port).test_connection()
    assert not ok
    assert f"Redis at 127.0.0.1:{port} cannot be reached" in message and "Connection refused" in message
    assert "Check the Host and Port" in message


def test_the_plugin_leaves_redis_hook_alone_outside_the_api_server(monkeypatch):
    from airflow.providers.redis.hooks.redis import RedisHook

    from airflow_backfill_provider.plugins.connection_test import apply_redis_test

    monkeypatch.delitem(sys.modules, "airflow.api_fastapi.app", raising=False)
    before = vars(RedisHook).get("test_connection")
    assert apply_redis_test() is False
    assert vars(RedisHook).get("test_connection") is before
