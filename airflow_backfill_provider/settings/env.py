"""Read one DAG's deployment settings from environment variables, each value checked on the way in.

Every reader names the variable and the bad value in its error, so a broken deployment fails the DAG
file's parse with a message that says what to fix. Unset variables take the default; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.settings.schedule import is_valid_cron
from airflow_backfill_provider.utils import as_bool, check_identifier, parse_duration, to_utc


class EnvReader:
    """Typed, validated look-ups in one mapping of environment variables."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        return self._environ.get(name)

    def text(self, name: str, default: str) -> str:
        """A non-empty string."""
        raw = self._raw(name)
        if raw is None:
            return default
        if not raw.strip():
            raise ConfigurationError(f"{name} is set but empty: set a value or unset it for {default!r}.")
        return raw.strip()

    def optional_text(self, name: str) -> str | None:
        """A string, or ``None`` when unset or empty."""
        raw = self._raw(name)
        return raw.strip() if raw and raw.strip() else None

    def name_list(self, name: str) -> tuple[str, ...] | None:
        """Comma-separated names, stripped; ``None`` when unset or empty (the caller's default)."""
        raw = self.optional_text(name)
        return None if raw is None else tuple(part.strip() for part in raw.split(","))

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        """A whole number of at least ``minimum`` (0: non-negative, 1: positive)."""
        raw = self._raw(name)
        if raw is None:
            return default
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise ConfigurationError(
                f"{name} must be {kind}, got {raw!r}: set e.g. {default}, or unset it for that default."
            )
        return value

    def optional_boolean(self, name: str) -> bool | None:
        """A boolean, or ``None`` when unset or empty (the caller's default then depends on others)."""
        raw = self.optional_text(name)
        return None if raw is None else as_bool(raw, name)

    def catchup(self, name: str, *, start_name: str, start_date: datetime | None, default: bool) -> bool:
        """Catchup, ``default`` when unset; ``true`` needs a start date, the first interval it loads.

        Without a start date, catchup has no first interval: ``true`` is refused with what to set,
        rather than silently meaning "from whenever".
        """
        explicit = self.optional_boolean(name)
        if explicit and start_date is None:
            raise ConfigurationError(
                f"{name} is true but {start_name} is not set: catchup loads every interval from the "
                f"start date. Set {start_name} (e.g. 2025-01-01), or unset {name}."
            )
        return default if explicit is None else explicit

    def date(self, name: str, default: datetime | None) -> datetime | None:
        """An instant in ISO 8601 (a bare date is its UTC midnight); empty means unset."""
        raw = self.optional_text(name)
        return default if raw is None else to_utc(raw, name)

    def duration(self, name: str, default: timedelta, *, allow_zero: bool = False) -> timedelta:
        """A plain number of seconds (``30``, ``1.5``) or a duration with a unit (``30s``, ``5m``, ``1h``)."""
        raw = self._raw(name)
        if raw is None:
            return default
        text = raw.strip()
        try:
            seconds = float(text)
        except ValueError:
            return parse_duration(text, name)
        if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
            least = "of at least 0" if allow_zero else "greater than 0"
            raise ConfigurationError(
                f"{name} must be a number of seconds {least} or a duration such as '30s', got {raw!r}."
            )
        return timedelta(seconds=seconds)

    def optional_duration(self, name: str, default: timedelta) -> timedelta | None:
        """A duration as :meth:`duration`, or ``None`` when switched off (``0``, ``off``, ``none``, empty)."""
        raw = self._raw(name)
        if raw is None:
            return default
        if _is_off(raw):
            return None
        return self.duration(name, default)

    def choices(self, name: str, default: tuple[str, ...], allowed: Sequence[str]) -> tuple[str, ...]:
        """A comma-separated, non-empty list of names out of ``allowed`` (case-insensitive)."""
        raw = self.optional_text(name)
        if raw is None:
            return default
        values = tuple(dict.fromkeys(v.strip().lower() for v in raw.split(",") if v.strip()))
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise ConfigurationError(
                f"{name} must be a comma-separated list of {', '.join(allowed)}, got {raw!r}"
                + (f" ({', '.join(bad)} unknown)" if bad else "")
                + f": set e.g. {','.join(default)}, or unset it for that default."
            )
        return values

    def identifier(self, name: str, default: str) -> str:
        """A table name: letters, digits and underscores, optionally ``database.table``."""
        return check_identifier(self.text(name, default), name)

    def cron(self, name: str, default: str) -> str:
        """A cron expression or preset that Airflow's cron timetables accept."""
        value = self.text(name, default)
        if not is_valid_cron(value):
            raise ConfigurationError(
                f"{name} must be a cron expression such as '0 * * * *' or a preset such as '@daily', "
                f"got {value!r}."
            )
        return value


def _is_off(raw: str) -> bool:
    """True for the false spellings of :func:`~airflow_backfill_provider.utils.as_bool` ('0', 'off', '')."""
    try:
        return not as_bool(raw, "")
    except ConfigurationError:
        return False
