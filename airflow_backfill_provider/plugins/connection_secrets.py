"""Hide the kube config of a Kubernetes connection wherever Airflow hides a password (Airflow 3.3).

Airflow redacts a connection's extras by key name only: the REST answers the UI reads (and so the
edit form's Extra Fields JSON view, and the body its Test button posts back) show ``***`` for an
extra whose name holds one of the sensitive words (``password``, ``token``, ``secret``, …, plus
``[core] sensitive_var_conn_names``). The cncf-kubernetes connection keeps a whole kube config,
credentials included, under ``kube_config``, a name with none of those words. Its form declares the
field a password (``format: password``), but Airflow 3.3 only uses that to draw the input, never to
redact. So a kube config stored as text (what that form field stores, and any YAML) came back whole,
token and client key included; stored as a JSON object it came back with its ``token`` hidden by
name but its ``client-key-data`` in clear.

This plugin adds the extra names that the connection types this provider documents declare as
passwords, and Airflow does not already hide, to the names Airflow hides, in every process that
loads plugins (the api-server is the one that answers the browser). It does what
``[core] sensitive_var_conn_names = kube_config`` does, without asking each deployment to set it.
Airflow matches names by substring, so ``kube_config_path`` is shown as ``***`` too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

# The password fields (conn-fields with "format": "password") of the connection types the docs
# prescribe that Airflow's own sensitive words miss: the cncf-kubernetes provider's kube config.
SENSITIVE_EXTRA_NAMES = ("kube_config",)


def _maskers() -> Iterator[Any]:
    """The api-server's masker and the Task SDK's: Airflow configures both from the same names."""
    from airflow._shared.secrets_masker import _secrets_masker

    yield _secrets_masker()
    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker as sdk_secrets_masker
    except ImportError:  # an api-server without the Task SDK
        return
    yield sdk_secrets_masker()


def hide_extra_names(names: Iterable[str] = SENSITIVE_EXTRA_NAMES) -> list[str]:
    """Add ``names`` to the extra names Airflow redacts; return those it did not redact before.

    Respects ``[core] hide_sensitive_var_conn_fields = False``: a deployment that turned redaction
    off keeps it off.
    """
    added: list[str] = []
    for masker in _maskers():
        fields = masker.sensitive_variables_fields
        for name in names:
            if name not in fields:
                masker.sensitive_variables_fields = [*fields, name]
                fields = masker.sensitive_variables_fields
                if name not in added:
                    added.append(name)
    if added:
        log.info("Connection extras hidden as passwords from now on: %s", ", ".join(added))
    return added


class ConnectionSecretsPlugin(AirflowPlugin):
    """Registers nothing in the UI; on load, applies :func:`hide_extra_names`."""

    name = "backfill_connection_secrets"

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        hide_extra_names()
