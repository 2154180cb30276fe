"""Make the connection list's Test button work for connections without a port (Airflow 3.3.2).

The list's Test button posts ``port: Number(connection.port)``, and ``Number(null)`` is ``0``. The
api-server compares that ``0`` with the stored NULL, decides the caller is testing another
destination, and answers HTTP 400 "The host or port to test differs from the stored connection"
(the UI shows a red icon, no words). That hits every connection without a port, among them this
provider's ``chdb`` connections and its SQLite historian. Airflow fixed it upstream
(apache/airflow#73298) by treating port 0 as no port, since nothing listens on port 0; this plugin
applies that same one-line normalisation in the api-server, and only where Airflow still lacks it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

_ROUTES = "airflow.api_fastapi.core_api.routes.public.connections"


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
    if "airflow.api_fastapi.app" not in sys.modules:
        return False
    import importlib

    routes = importlib.import_module(_ROUTES)
    original = getattr(routes, "_same_endpoint", None)
    if original is None or original is _same_endpoint or original(0, None):
        return False
    routes._same_endpoint = _same_endpoint
    log.info("Connection Test: port 0 now means 'no port' (the fix of apache/airflow#73298)")
    return True


class ConnectionTestPlugin(AirflowPlugin):
    """Registers nothing in the UI; on load, applies :func:`apply_port_fix` in the api-server."""

    name = "backfill_connection_test"

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        apply_port_fix()
