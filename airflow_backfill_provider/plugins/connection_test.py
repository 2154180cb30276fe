"""Make the connection list's Test button work for the connections the docs prescribe (Airflow 3.3.2).

Connections without a port. The list's Test button posts ``port: Number(connection.port)``, and
``Number(null)`` is ``0``. The api-server compares that ``0`` with the stored NULL, decides the caller is testing another
destination, and answers HTTP 400 "The host or port to test differs from the stored connection"
(the UI shows a red icon, no words). That hits every connection without a port, among them this
provider's ``chdb`` connections and its SQLite historian. Airflow fixed it upstream
(apache/airflow#73298) by treating port 0 as no port, since nothing listens on port 0; this plugin
applies that same one-line normalisation in the api-server, and only where Airflow still lacks it.

Redis. The redis provider's ``RedisHook`` has no ``test_connection``, so Test of the sync's tag
cache connection said "Hook RedisHook doesn't implement or inherit test_connection method". In the
api-server, and only while the redis provider lacks one, the plugin gives it
:func:`redis_test_connection`: a PING with the connection's own settings. Nothing else about
``RedisHook`` changes. ``airflow connections test`` does not load plugins, so on the CLI a
``redis`` connection still has no test.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

_ROUTES = "airflow.api_fastapi.core_api.routes.public.connections"
# Seconds a Redis Test waits to connect and for each answer: the api-server's request must not hang
# for the operating system's TCP timeout (minutes) on a host that drops packets.
REDIS_TEST_TIMEOUT = 5.0


def _in_api_server() -> bool:
    """The route module is only imported where the FastAPI app is built."""
    return "airflow.api_fastapi.app" in sys.modules


def _same_endpoint(requested: Any, stored: Any) -> bool:
    """Airflow's own comparison, with 0 (a port the UI sends for "no port") treated as unset."""

    def norm(value: Any) -> Any:
        return None if value is None or value == "" or value == 0 else value

    return norm(requested) == norm(stored)


def apply_port_fix() -> bool:
    """Patch the api-server's endpoint comparison if it still tells port 0 from no port.

    Returns whether it patched. Does nothing outside an api-server process (the route module is
    only imported where the FastAPI app is built) and nothing on an Airflow that has the fix.
    """
    if not _in_api_server():
        return False
    import importlib

    routes = importlib.import_module(_ROUTES)
    original = getattr(routes, "_same_endpoint", None)
    if original is None or original is _same_endpoint or original(0, None):
        return False
    routes._same_endpoint = _same_endpoint
    log.info("Connection Test: port 0 now means 'no port' (the fix of apache/airflow#73298)")
    return True


def redis_test_connection(hook: Any) -> tuple[bool, str]:
    """Test of a ``redis`` connection through its ``RedisHook``: a PING with the connection's own
    host, port, login, password, db and TLS settings, the cheapest call proving that the server
    answers and takes the credentials. Failures say what to fix, never the password."""
    from redis.exceptions import AuthenticationError, RedisError

    try:
        client = hook.get_conn()
    except Exception as err:  # the hook refuses the connection's extras (e.g. a db with a cluster)
        return False, f"The Redis connection cannot be used: {err}"
    where = f"{hook.host or 'localhost'}:{hook.port or 6379}"
    pool = getattr(client, "connection_pool", None)
    if pool is not None:  # connections are made on first use, from these kwargs
        pool.connection_kwargs.setdefault("socket_connect_timeout", REDIS_TEST_TIMEOUT)
        pool.connection_kwargs.setdefault("socket_timeout", REDIS_TEST_TIMEOUT)
    try:
        client.ping()
        try:
            version = f"Redis {client.info('server')['redis_version']}"
        except (RedisError, KeyError):  # INFO may be denied to an ACL user that can PING
            version = "Redis"
    except AuthenticationError as err:
        return False, (
            f"Redis at {where} refused the credentials ({str(err).rstrip('.')}). Fix the "
            "connection's Password (and Login, for a Redis ACL user)."
        )
    except RedisError as err:
        return False, (
            f"Redis at {where} cannot be reached ({type(err).__name__}: {str(err).rstrip('.')}). "
            "Check the Host and Port, and that Redis is running there."
        )
    finally:
        client.close()
    return True, f"{version} at {where} (db {hook.db or 0}) answered PING."


def _redis_hook_test_connection(self: Any) -> tuple[bool, str]:
    return redis_test_connection(self)


def apply_redis_test() -> bool:
    """Give the redis provider's ``RedisHook`` a ``test_connection`` in the api-server.

    Returns whether it did. Does nothing outside an api-server, without the redis provider, and on
    a redis provider that has its own test.
    """
    if not _in_api_server():
        return False
    try:
        from airflow.providers.redis.hooks.redis import RedisHook
    except ImportError:
        return False
    if getattr(RedisHook, "test_connection", None) is not None:
        return False
    RedisHook.test_connection = _redis_hook_test_connection  # type: ignore[attr-defined]
    log.info("Connection Test: redis connections answer a PING (RedisHook has no test_connection)")
    return True


class ConnectionTestPlugin(AirflowPlugin):
    """Registers nothing in the UI; on load, applies :func:`apply_port_fix` and
    :func:`apply_redis_test` in the api-server."""

    name = "backfill_connection_test"

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        apply_port_fix()
        apply_redis_test()
