"""How the dashboard's pages write scores, lateness and times (one way everywhere)."""

from __future__ import annotations

from datetime import UTC, datetime


def number(value: float) -> str:
    """A score as people write it: 2, 0.5, 0.333333 (never 2.0, or a rounding tail)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def lateness(late_seconds: int) -> str:
    """ "on time", or how late in the largest two units: "2 d 3 h late", "5 min late"."""
    if late_seconds <= 0:
        return "on time"
    minutes, seconds = divmod(late_seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{amount} {unit}" for amount, unit in parts if amount][:2]
    return " ".join(shown) + " late"


def timestamp(moment: datetime) -> str:
    """A time in UTC to the minute; SQLite hands back naive datetimes, which are UTC already."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime) -> str:
    """The machine-readable form for a <time datetime=...> attribute."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()
