"""Pure core of the Kubernetes domain: Jobs from a CronJob's template, names, logs, config.

Plain Python on plain dicts (the JSON the API server speaks), with no Airflow and no Kubernetes
client import, so every rule is unit-tested directly: the Job manifest (:mod:`.manifest`), its
deterministic name and label values (:mod:`.names`), the log lines that name workflows
(:mod:`.logs`), the clusters × customers config (:mod:`.config`) and the API errors that name what
to fix (:mod:`.errors`).
"""
