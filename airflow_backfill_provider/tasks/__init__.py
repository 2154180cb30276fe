"""The logic of each DAG's ``@task`` functions, one module per DAG.

The DAG files only wire tasks together; each task body calls one function here with plain values
(Params, the data interval, hooks), so unit tests call the same functions without an Airflow run.
"""
