"""An AVEVA Historian emulator that follows the documented retrieval rules (test support).

:mod:`.retrieval` holds the rules, :mod:`.store` the stored values, :mod:`.tsql` reads the T-SQL,
:mod:`.emulator` answers the TDS endpoint (:mod:`tests.support.tds`) as a Historian's ``Runtime``.
"""

from tests.support.aveva.emulator import HistorianEmulator
from tests.support.aveva.retrieval import Point, Request, Row, retrieve
from tests.support.aveva.store import HistorianStore

__all__ = ["HistorianEmulator", "HistorianStore", "Point", "Request", "Row", "retrieve"]
