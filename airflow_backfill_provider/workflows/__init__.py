"""Finding missing or failed workflow executions in an interval, and naming their replacements.

Plain Python with no Airflow or Temporal import; the hook and the operators feed it plain values.

- :mod:`.status`: the vocabulary, execution statuses and the classes a key ends up in;
- :mod:`.spec`: spec parsing, id templates and replacement ids;
- :mod:`.visibility`: the visibility queries that list a spec's executions;
- :mod:`.classify`: executions and history points to one report per key;
- :mod:`.requests`: the ClickHouse table that records each replacement started, and its rows;
- :mod:`.retention`: whether the namespace's retention still keeps every execution of an interval.
"""
