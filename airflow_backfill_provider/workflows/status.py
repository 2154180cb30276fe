"""The one vocabulary of workflow states: how an execution ended, and what a key is classified as.

Both are ``str`` enums whose values are the strings stored in XCom, logs and ClickHouse rows, so a
member compares, hashes, formats and serialises exactly like the plain string it stands for.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class _Vocabulary(str, Enum):
    """A ``str`` enum that formats as its value on every Python version (like 3.11's StrEnum)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)


class WorkflowStatus(_Vocabulary):
    """An execution's status as Temporal's visibility spells it (``ExecutionStatus = 'TimedOut'``)."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    TERMINATED = "Terminated"
    CANCELED = "Canceled"

    @classmethod
    def from_sdk(cls, status: Any) -> WorkflowStatus | str:
        """The member for an SDK ``WorkflowExecutionStatus`` (matched by name, so no SDK import).

        ``None`` is ``"Unknown"``; a status this enum does not know stays as the SDK spells it.
        """
        if status is None:
            return "Unknown"
        name = getattr(status, "name", str(status))
        return cls.__members__.get(name, str(status))


# Closed without completing: what a waiter reports as a failure and the gap finder as a gap.
FAILURE_STATUSES = (
    WorkflowStatus.FAILED,
    WorkflowStatus.TIMED_OUT,
    WorkflowStatus.TERMINATED,
    WorkflowStatus.CANCELED,
)
# Not closed yet for a waiter: a continued-as-new run has a successor that is still to close.
OPEN_STATUSES = (WorkflowStatus.RUNNING, WorkflowStatus.CONTINUED_AS_NEW)


class KeyClass(_Vocabulary):
    """What the gap finder concluded for one key in one interval, in report order."""

    COMPLETED = "completed"
    RUNNING = "running"
    RUNNING_TOO_LONG = "running_too_long"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    TERMINATED = "terminated"
    CANCELED = "canceled"
    MISSING = "missing"


CLASSES = tuple(KeyClass)
# Running too long is reported only: a second execution next to a live one would do the work twice.
GAP_CLASSES = (KeyClass.FAILED, KeyClass.TIMED_OUT, KeyClass.TERMINATED, KeyClass.CANCELED, KeyClass.MISSING)
