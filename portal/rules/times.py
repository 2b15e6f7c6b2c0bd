"""Stored times are naive UTC; a person sees them in their own timezone."""

import functools
import zoneinfo
from datetime import UTC, date, datetime


@functools.cache
def named_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`, loaded once per process; raises as ZoneInfo does for unknown names."""
    # ZoneInfo's own cache keeps only the 8 latest zones strongly: a billing run over accounts
    # in more timezones than that read the zone files again for most accounts.
    return zoneinfo.ZoneInfo(name)


def zone(name: str | None) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`, UTC for an empty or unknown name (a time is never hidden)."""
    try:
        return named_zone(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return named_zone("UTC")


def in_zone(moment: datetime, zone_name: str | None) -> datetime:
    """A stored naive-UTC time as the wall-clock time (aware) in `zone_name`."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(zone(zone_name))


def local_day(moment: datetime, zone_name: str | None) -> date:
    """The calendar date in `zone_name` at a stored naive-UTC time."""
    return in_zone(moment, zone_name).date()


UTC_TEXT = "%Y-%m-%dT%H:%MZ"  # a stored time written as text (audit log), marked as UTC


def utc_text(moment: datetime) -> str:
    """A stored naive-UTC time as text to the minute, marked as UTC, e.g. 2026-03-29T00:30Z."""
    return moment.strftime(UTC_TEXT)


def from_utc_text(text: str) -> datetime | None:
    """The naive-UTC time `utc_text` wrote, or None for any other text."""
    if len(text) != 17 or not text.endswith("Z"):
        return None
    try:
        return datetime.strptime(text, UTC_TEXT)
    except ValueError:
        return None
