"""Glue to the ``temporalio`` SDK, with no Airflow import; :mod:`..hooks.temporal` builds on it.

- :mod:`.errors`: the exceptions, and the one translation of the SDK's ``RPCError`` into them;
- :mod:`.connection`: an Airflow connection's fields as ``Client.connect`` arguments;
- :mod:`.bridge`: blocking calls into async code, on one private loop thread per process;
- :mod:`.records`: visibility records and history events as plain values;
- :mod:`.search_attributes`: typed search attributes from a plain mapping.
"""
