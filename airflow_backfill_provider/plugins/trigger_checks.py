"""Refuse a bad trigger of this provider's DAGs in words, before a run exists (Airflow 3.3.2 api-server).

Airflow checks a trigger's conf one Param at a time. It answers a bad value with jsonschema's text:
the rule, the whole schema that holds it, and the value. The Trigger dialog shows that text as it
is. Airflow cannot refuse what no single Param's schema says either: a window whose end is before
its start was accepted, and failed only in the run's first task. The Trigger form cannot check
these. It checks no ``pattern``, takes ``P`` for a duration, and has no number range.

This plugin adds one middleware to the api-server. It looks at the POSTs that trigger a run
(``/api/v2/dags/{dag_id}/dagRuns``) or create a backfill (``/api/v2/backfills`` and its
``/dry_run``) of this provider's DAGs. It checks their conf with
:func:`airflow_backfill_provider.params.refusals.refusals`. When something is wrong, it answers
400 with one sentence per problem, and no run is created; the dialog shows the sentences. Any other
request, and a conf with nothing wrong, goes on to Airflow untouched, and Airflow checks it again.

The middleware answers before Airflow checks who is asking. So a request with a bad conf and no
valid login gets this 400 rather than a 401. It tells the caller nothing but the rules of this
provider's Params, which are public.

The CLI (``airflow dags trigger``) does not go through the api-server. It gets Airflow's own text,
which quotes a number's range and why (:func:`airflow_backfill_provider.params.number_range`), and
a reversed window fails the run's first task.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import unquote

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

_TRIGGER = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
_BACKFILL = re.compile(r"/api/v2/backfills(?:/dry_run)?/?$")


def problems(path: str, body: bytes) -> tuple[str, list[str]]:
    """What a POST to ``path`` with ``body`` would create, and what is wrong with its conf.

    ``("", [])`` for a request this plugin does not check: another path, or a body Airflow must
    refuse on its own (not JSON, no object).
    """
    from airflow_backfill_provider.params.refusals import refusals

    trigger, backfill = _TRIGGER.search(path), _BACKFILL.search(path)
    if not (trigger or backfill):
        return "", []
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return "", []
    if not isinstance(payload, dict):
        return "", []
    if trigger:
        return "run", refusals(unquote(trigger["dag_id"]), payload.get("conf"))
    return "backfill", refusals(str(payload.get("dag_id")), payload.get("dag_run_conf"), backfill=True)


def detail(what: str, found: list[str]) -> str:
    """The answer's text: what was not created, then each problem on a line of its own."""
    return "\n".join([f"No {what} was created. Fix these Params and try again:", *found])


class TriggerConfCheck:
    """ASGI middleware: refuses a trigger or backfill with a bad conf in words (see the module)."""

    def __init__(self, app: Any) -> None:
        from airflow.configuration import conf

        self.app = app
        # With overrides off Airflow ignores a conf's Param values, so there is nothing to refuse.
        self.enabled = conf.getboolean("core", "dag_run_conf_overrides_params", fallback=True)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            not self.enabled
            or scope["type"] != "http"
            or scope.get("method") != "POST"
            or not (_TRIGGER.search(path) or _BACKFILL.search(path))
        ):
            await self.app(scope, receive, send)
            return
        messages, body = await _read(receive)
        what, found = problems(path, body)
        if not found:
            await self.app(scope, _replay(messages, receive), send)
            return
        from starlette.responses import JSONResponse

        log.info("Refused a %s of %s: %s", what, path, " ".join(found))
        await JSONResponse({"detail": detail(what, found)}, status_code=400)(scope, receive, send)


async def _read(receive: Any) -> tuple[list[dict], bytes]:
    """Every message of the request's body, and the body they carry."""
    messages, chunks = [], []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return messages, b"".join(chunks)


def _replay(messages: list[dict], receive: Any) -> Any:
    """A ``receive`` that hands Airflow the body this middleware read, then the live channel."""
    pending = list(messages)

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay


class TriggerChecksPlugin(AirflowPlugin):
    """Adds :class:`TriggerConfCheck` to the api-server."""

    name = "backfill_trigger_checks"
    fastapi_root_middlewares = [{"name": "backfill_trigger_checks", "middleware": TriggerConfCheck}]
