"""One sliding-window rule for every per-user limit: at most `limit` requests in any
`window_seconds`, counted from rows in the database under a per-user advisory lock, so every API
process sees the same count, two concurrent requests cannot both take the last slot, and a Redis
outage does not lift it. Over the limit: 429 with Retry-After (when the oldest request of the
window leaves it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from service.config import Settings
from service.errors import TooManyRequests
from service.models import utcnow
from service.rate_limits import repository

# The class keys of pg_advisory_xact_lock(class, user_id), one per limited action.
SUBMISSION_LOCK_CLASS = 0x5355  # "SU"
PREVIEW_LOCK_CLASS = 0x5056  # "PV"
PREVIEW_ACTION = "preview"


def enforce(
    session: Session,
    user_id: int,
    lock_class: int,
    limit: int,
    window_seconds: float,
    newest_times: Callable[[int], list[datetime]],
    what: str,
) -> datetime:
    """Refuse (429) the user's request if `limit` of them fall in the window; `newest_times(n)`
    gives the times of the user's newest n requests. Returns now, the time to record."""
    now = utcnow()
    if limit == 0:
        return now
    repository.lock_user(session, lock_class, user_id)
    newest = newest_times(limit)
    window = timedelta(seconds=window_seconds)
    if len(newest) == limit and newest[-1] > now - window:
        retry_after = max(1, math.ceil((newest[-1] + window - now).total_seconds()))
        raise TooManyRequests(
            f"At most {limit} {what} per {window_seconds:g} seconds; retry in {retry_after} s.",
            retry_after_seconds=retry_after,
            details={"limit": limit, "window_seconds": window_seconds},
        )
    return now


def take_preview_slot(session: Session, settings: Settings, user_id: int) -> None:
    """Count one formula preview against AUTOGRADE_RATE_LIMIT_PREVIEWS, or refuse it (429)."""
    limit = settings.rate_limit_previews
    window = settings.rate_limit_previews_window_seconds
    now = enforce(
        session,
        user_id,
        PREVIEW_LOCK_CLASS,
        limit,
        window,
        lambda count: repository.newest_event_times(session, user_id, PREVIEW_ACTION, count),
        "formula previews",
    )
    if limit == 0:
        return
    # Only the window's rows are ever read: older ones go as the user previews again.
    repository.forget_events_before(session, user_id, PREVIEW_ACTION, now - timedelta(seconds=window))
    repository.add_event(session, user_id, PREVIEW_ACTION, now)
