"""Small parsers and formatters shared by every domain: durations, booleans, instants, identifiers.

One parser per vocabulary, so a setting, a Param and a connection extra accept the same spellings.
No Airflow import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from airflow_backfill_provider.exceptions import ConfigurationError

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# ISO 8601 durations as the Trigger form's duration field writes them; no years or months, whose
# length varies.
_ISO_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$", re.I
)
_ISO_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", "", "none"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_duration(value: str | int | float | timedelta, what: str = "duration") -> timedelta:
    """Parse ``"15m"``, ``"6h"``, ``"1d"``, ``"2w"``, ISO 8601 (``"PT6H"``, ``"P1DT12H"``) or a number
    of seconds into a positive timedelta."""
    if isinstance(value, timedelta):
        td = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        td = timedelta(seconds=value)
    else:
        text = str(value).strip()
        short, iso = _DURATION.match(text), _ISO_DURATION.match(text)
        if short:
            td = timedelta(seconds=int(short.group(1)) * _UNIT_SECONDS[short.group(2).lower()])
        elif iso and text.upper() not in ("P", "PT"):
            td = timedelta(**{unit: int(iso.group(key) or 0) for key, unit in _ISO_UNITS.items()})
        else:
            raise ConfigurationError(
                f"Invalid {what} {value!r}: use a number with a unit s, m, h, d or w, e.g. '6h' or '1d' "
                "(or ISO 8601 such as 'PT6H')."
            )
    if td <= timedelta(0):
        raise ConfigurationError(f"Invalid {what} {value!r}: it must be greater than zero.")
    return td


def to_utc(value: str | datetime, what: str = "timestamp") -> datetime:
    """Parse an ISO 8601 string or datetime into an aware UTC datetime (naive input is taken as UTC)."""
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as err:
            raise ConfigurationError(
                f"Invalid {what} {value!r}: use ISO 8601, e.g. '2025-01-01T00:00:00+00:00'."
            ) from err
    dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    # A plain datetime, also for pendulum input: pendulum and stdlib instants mix badly in arithmetic.
    return datetime(*dt.timetuple()[:6], dt.microsecond, tzinfo=timezone.utc)


def as_bool(value: Any, what: str) -> bool:
    """Strict boolean from a bool or a rendered template string ('True', 'false', ...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"Invalid {what} {value!r}: use true or false.")


def check_identifier(name: str, what: str = "table name") -> str:
    """Return ``name`` if it is a plain SQL identifier (optionally ``db.table``), else raise."""
    parts = str(name).split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise ConfigurationError(
            f"Invalid {what} {name!r}: use letters, digits and underscores, optionally as database.table."
        )
    return name


def quote_identifier(name: str) -> str:
    """Backtick-quote a checked ``table`` or ``db.table`` for ClickHouse."""
    return ".".join(f"`{p}`" for p in check_identifier(name).split("."))


def system_table_filter(table: str, name_column: str = "table") -> tuple[str, dict[str, str]]:
    """The ``WHERE`` condition and parameters that find ``table`` (or ``db.table``) in ClickHouse's
    ``system.tables``/``columns``/``parts``; a bare name means the session's current database."""
    db, _, name = table.rpartition(".")
    where = (
        "database = "
        + ("{db:String}" if db else "currentDatabase()")
        + f" AND {name_column} = {{name:String}}"
    )
    return where, {"db": db, "name": name}


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, or ``None``: the one spelling of an instant in XCom, logs and records."""
    return value.astimezone(timezone.utc).isoformat() if value else None


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
