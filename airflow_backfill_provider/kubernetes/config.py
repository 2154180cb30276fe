"""The clusters × customers a backfill runs over: the seed's ``config.json``, checked and filtered.

.. code-block:: json

    {"defaults": {"namespace": "cresta-cron", "cronjob": "cron-batch-reindex-conversations"},
     "clusters": [{"name": "us-east-1-prod",
                   "customers": [{"id": "sunbit", "profile": "default"}, {"id": "customer2"}]}]}

A cluster may also set ``kubernetes_conn_id``, ``temporal_conn_id``, ``temporal_namespace``,
``namespace``, ``cronjob`` and ``container``; whatever it leaves out comes from ``defaults``, then
from the deployment's settings. Connection ids default to ``kubernetes_<cluster>`` and
``temporal_<cluster>`` (the cluster name with every character other than letters, digits and ``_``
turned into ``_``: ``us-east-1-prod`` → ``kubernetes_us_east_1_prod``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from airflow_backfill_provider.exceptions import ConfigurationError

CLUSTER_FIELDS = (
    "namespace",
    "cronjob",
    "container",
    "kubernetes_conn_id",
    "temporal_conn_id",
    "temporal_namespace",
)
_CONN_CHARS = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class Defaults:
    """What a cluster that does not say otherwise gets (the deployment's settings)."""

    namespace: str | None = None
    cronjob: str = "cron-batch-reindex-conversations"
    container: str | None = None
    temporal_namespace: str = "ingestion"
    profile: str = "default"


@dataclass(frozen=True)
class Target:
    """One (cluster, customer): one Job, whose workflows are tracked on the cluster's Temporal."""

    cluster: str
    customer: str
    profile: str
    namespace: str | None
    cronjob: str
    container: str | None
    kubernetes_conn_id: str
    temporal_conn_id: str
    temporal_namespace: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def conn_id_for(prefix: str, cluster: str) -> str:
    return f"{prefix}_{_CONN_CHARS.sub('_', cluster)}"


def loads(text: str, source: str) -> Any:
    """JSON text, or an error naming ``source`` and where the text stops parsing."""
    try:
        return json.loads(text)
    except ValueError as err:
        raise ConfigurationError(f"The backfill config in {source} is not valid JSON: {err}.") from err


def parse(raw: Any, source: str, defaults: Defaults = Defaults()) -> list[Target]:
    """Every (cluster, customer) of ``raw``, in config order; errors name ``source`` and the field."""
    if isinstance(raw, str):
        raw = loads(raw, source)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("clusters"), list) or not raw["clusters"]:
        raise ConfigurationError(
            f'The backfill config in {source} needs a non-empty "clusters" list, e.g. {{"clusters": '
            '[{"name": "us-east-1-prod", "customers": [{"id": "sunbit", "profile": "default"}]}]}.'
        )
    unknown = set(raw) - {"clusters", "defaults"}
    if unknown:
        raise ConfigurationError(f"The backfill config in {source} has unknown keys {sorted(unknown)}.")
    top = raw.get("defaults") or {}
    _check_keys(top, set(CLUSTER_FIELDS) | {"profile"}, f"{source}: defaults")
    targets: list[Target] = []
    seen: set[str] = set()
    for i, cluster in enumerate(raw["clusters"]):
        where = f"{source}: clusters[{i}]"
        if not isinstance(cluster, Mapping) or not _text(cluster.get("name")):
            raise ConfigurationError(f'{where} needs a "name", e.g. "us-east-1-prod".')
        name = cluster["name"]
        if name in seen:
            raise ConfigurationError(f"{where}: cluster {name!r} is listed twice; merge its customers.")
        seen.add(name)
        _check_keys(cluster, {"name", "customers", *CLUSTER_FIELDS}, where)
        customers = cluster.get("customers")
        if not isinstance(customers, list) or not customers:
            raise ConfigurationError(f'{where} ({name}) needs a non-empty "customers" list.')

        def pick(key: str, fallback: Any, cluster: Mapping[str, Any] = cluster) -> Any:
            value = cluster.get(key, top.get(key))
            return fallback if value in (None, "") else value

        ids: set[str] = set()
        for j, customer in enumerate(customers):
            cwhere = f"{where}.customers[{j}]"
            if isinstance(customer, str):
                customer = {"id": customer}
            if not isinstance(customer, Mapping) or not _text(customer.get("id")):
                raise ConfigurationError(
                    f'{cwhere} needs an "id", e.g. {{"id": "sunbit", "profile": "default"}}.'
                )
            _check_keys(customer, {"id", "profile"}, cwhere)
            if customer["id"] in ids:
                raise ConfigurationError(f"{cwhere}: customer {customer['id']!r} is listed twice in {name}.")
            ids.add(customer["id"])
            targets.append(
                Target(
                    cluster=name,
                    customer=customer["id"],
                    profile=customer.get("profile") or top.get("profile") or defaults.profile,
                    namespace=pick("namespace", defaults.namespace),
                    cronjob=pick("cronjob", defaults.cronjob),
                    container=pick("container", defaults.container),
                    kubernetes_conn_id=pick("kubernetes_conn_id", conn_id_for("kubernetes", name)),
                    temporal_conn_id=pick("temporal_conn_id", conn_id_for("temporal", name)),
                    temporal_namespace=pick("temporal_namespace", defaults.temporal_namespace),
                )
            )
    return targets


def select(
    targets: Sequence[Target], *, clusters: Sequence[str] = (), customers: Sequence[str] = ()
) -> list[Target]:
    """The targets of the given clusters and customers (empty filter: all); unknown names are errors."""
    known_clusters = list(dict.fromkeys(t.cluster for t in targets))
    missing = [c for c in clusters if c not in known_clusters]
    if missing:
        raise ConfigurationError(
            f"Cluster filter {missing} names no cluster of the config: {known_clusters}."
        )
    chosen = [t for t in targets if not clusters or t.cluster in clusters]
    known_customers = list(dict.fromkeys(t.customer for t in chosen))
    missing = [c for c in customers if c not in known_customers]
    if missing:
        raise ConfigurationError(
            f"Customer filter {missing} names no customer of cluster(s) {list(clusters) or known_clusters}: "
            f"{known_customers}."
        )
    return [t for t in chosen if not customers or t.customer in customers]


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_keys(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(obj) - allowed
    if unknown:
        raise ConfigurationError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
