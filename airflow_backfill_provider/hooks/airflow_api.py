"""Airflow's own REST API (``/api/v2``), for work that must show in the UI as Airflow's own.

The sync's retroactive backfill asks Airflow for a ``wonderware_backfill`` run (``POST
/api/v2/dags/{dag_id}/dagRuns``) and for a native backfill (``POST /api/v2/backfills``), so both
appear in the UI, with the backfill banner, pause and cancel, exactly as if a person had asked.

The connection is of type ``airflowapi`` (this provider's, so the UI offers it and its Test
button signs in; a connection of another type with the same fields, such as ``http``, works too):
host (with ``https://`` when it is TLS), port, and the credentials of a user allowed to trigger the
DAG:

- Login and Password: exchanged for a JWT at ``POST /auth/token`` (the simple auth manager and the
  FAB auth manager both serve it);
- Password only: taken as a ready JWT (e.g. one made with ``airflow api-server`` tooling);
- neither: ``GET /auth/token``, which only an api-server with ``simple_auth_manager_all_admins``
  answers (development set-ups and tests).

Transient failures (connection refused, timeouts, HTTP 5xx and 429) are retried with exponential
backoff; an HTTP error is raised as :class:`AirflowApiError` with the server's own reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from airflow.sdk.bases.hook import BaseHook

from airflow_backfill_provider.exceptions import BackfillProviderError, ConfigurationError
from airflow_backfill_provider.resilience import RetryPolicy, call_with_retry
from airflow_backfill_provider.utils import iso

_TIMEOUT = 30
# The operating system's reason inside requests' wrapped errors ("[Errno 111] Connection refused").
_OS_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class AirflowApiError(BackfillProviderError):
    """The api-server answered with an HTTP error; ``status`` is its code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _transient(err: BaseException) -> bool:
    if isinstance(err, AirflowApiError):
        return err.status >= 500 or err.status == 429
    return isinstance(err, requests.ConnectionError | requests.Timeout)


class AirflowApiHook(BaseHook):
    """Calls to Airflow's REST API through an ``airflowapi`` connection (see the module docs for
    auth)."""

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = "airflow_api_default"
    conn_type = "airflowapi"
    hook_name = "Airflow REST API"

    def __init__(
        self, airflow_api_conn_id: str = default_conn_name, *, retry: RetryPolicy | None = None
    ) -> None:
        super().__init__()
        self.airflow_api_conn_id = airflow_api_conn_id
        self.retry = retry or RetryPolicy(attempts=4, base_delay=2.0, max_delay=30.0)
        self._session: requests.Session | None = None
        self._base: str | None = None

    @property
    def base_url(self) -> str:
        if self._base is None:
            conn = self.get_connection(self.airflow_api_conn_id)
            if not conn.host:
                raise ConfigurationError(
                    f"Connection {self.airflow_api_conn_id!r} has no host: set the api-server's address, "
                    "e.g. http://airflow-apiserver:8080."
                )
            host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
            self._base = host.rstrip("/") + (f":{conn.port}" if conn.port else "")
        return self._base

    def _authenticated(self) -> requests.Session:
        if self._session is not None:
            return self._session
        conn = self.get_connection(self.airflow_api_conn_id)
        session = requests.Session()
        if conn.login:
            answer = session.post(
                f"{self.base_url}/auth/token",
                json={"username": conn.login, "password": conn.password or ""},
                timeout=_TIMEOUT,
            )
        elif conn.password:
            session.headers["Authorization"] = f"Bearer {conn.password}"
            self._session = session
            return session
        else:
            answer = session.get(f"{self.base_url}/auth/token", timeout=_TIMEOUT)
        if answer.status_code >= 400:
            raise AirflowApiError(
                f"Airflow API connection {self.airflow_api_conn_id!r}: {self.base_url}/auth/token refused "
                f"the credentials (HTTP {answer.status_code}: {answer.text[:300]}). Set the Login and "
                "Password of a user allowed to trigger DAGs.",
                answer.status_code,
            )
        session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        self._session = session
        return session

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict:
        """One call, retried with backoff on transient failures; the decoded JSON answer."""

        def call() -> dict:
            answer = self._authenticated().request(
                method, f"{self.base_url}{path}", json=body, timeout=_TIMEOUT
            )
            if answer.status_code >= 400:
                raise AirflowApiError(
                    f"{method} {path}: HTTP {answer.status_code}: {answer.text[:500]}", answer.status_code
                )
            return answer.json() if answer.content else {}

        return call_with_retry(
            call, is_transient=_transient, policy=self.retry, what=f"Airflow API {method} {path}"
        )

    def trigger_dag_run(
        self, dag_id: str, run_id: str, conf: Mapping[str, Any], *, note: str | None = None
    ) -> tuple[dict, bool]:
        """Create the manual run ``run_id`` of ``dag_id``; ``(run, created)``: an existing run of
        that id is returned with ``created=False``, so asking twice makes one run."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf), "note": note}
        try:
            return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body), True
        except AirflowApiError as err:
            if err.status != 409:
                raise
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"), False

    def create_backfill(
        self,
        dag_id: str,
        from_date: datetime,
        to_date: datetime,
        *,
        reprocess_behavior: str = "completed",
        max_active_runs: int = 2,
        dag_run_conf: Mapping[str, Any] | None = None,
    ) -> dict:
        """A native backfill of ``dag_id`` over ``[from_date, to_date]`` (``POST /api/v2/backfills``):
        it shows in the UI's backfill banner, where it can be paused or cancelled."""
        body = {
            "dag_id": dag_id,
            "from_date": iso(from_date),
            "to_date": iso(to_date),
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": max_active_runs,
            "dag_run_conf": dict(dag_run_conf or {}),
        }
        return self.request("POST", "/api/v2/backfills", body)

    def test_connection(self) -> tuple[bool, str]:
        """Sign in and list one DAG, once and without retries: proves the address and that the
        api-server takes the credentials. The message names the server and says what to fix."""
        try:
            base = self.base_url
            version = requests.get(f"{base}/api/v2/version", timeout=_TIMEOUT).json().get("version", "?")
            answer = self._authenticated().get(f"{base}/api/v2/dags", params={"limit": 1}, timeout=_TIMEOUT)
        except (ConfigurationError, AirflowApiError) as err:
            return False, str(err)
        except requests.JSONDecodeError as err:  # another kind of server at that address
            return False, f"{self.base_url} does not answer as an Airflow api-server ({err})."
        except requests.RequestException as err:
            found = _OS_REASON.search(str(err))
            reason = found.group(1).strip() if found else f"{type(err).__name__}: {str(err)[:300]}"
            return False, (
                f"Cannot connect to the Airflow API at {self.base_url}: {reason}. Check the Host (with "
                "http:// or https://) and Port of the api-server."
            )
        if answer.status_code >= 400:
            return False, (
                f"The Airflow API at {base} refused to list DAGs with these credentials (HTTP "
                f"{answer.status_code}: {answer.text[:300]}). Use a user allowed to read and trigger DAGs."
            )
        return True, f"Airflow {version} at {base} accepted the credentials ({self._credentials()})."

    def _credentials(self) -> str:
        conn = self.get_connection(self.airflow_api_conn_id)
        if conn.login:
            return f"login {conn.login!r}"
        return "the JWT in Password" if conn.password else "no login: an api-server where everyone is admin"
