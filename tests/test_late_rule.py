"""The late rule at its boundaries (docs/grading-policy.md): exactly at the due time, one second
after, period boundaries, the cutoff exactly and one second after, time zones across a DST change,
and an extension moving both the due time and the cutoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.assignments.policy import LateRule, Policy, lateness
from service.policies.service import explain

BERLIN = ZoneInfo("Europe/Berlin")
# Saturday noon in Berlin (UTC+1); the clocks go forward that night (2026-03-29 02:00 -> 03:00).
# In UTC, so that DUE + DAY is 24 elapsed hours (Python adds on the wall clock within one zone).
DUE = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN).astimezone(UTC)
TEN_PERCENT_A_DAY = Policy.model_validate(
    {
        "timezone": "Europe/Berlin",
        "opens_at": "2026-03-01T09:00:00",
        "due_at": "2026-03-28T12:00:00",
        "late": {"penalty_percent": 10, "cutoff_hours": 72},
    }
)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("submitted", "late_seconds", "penalty", "refused"),
    [
        pytest.param(DUE - SECOND, 0, 0.0, None, id="a second early"),
        pytest.param(DUE, 0, 0.0, None, id="exactly at the due time"),
        pytest.param(DUE + SECOND, 1, 0.1, None, id="one second after"),
        pytest.param(DUE + timedelta(milliseconds=1), 1, 0.1, None, id="a millisecond after"),
        pytest.param(DUE + DAY, 86_400, 0.1, None, id="exactly one period"),
        pytest.param(DUE + DAY + SECOND, 86_401, 0.2, None, id="one period and a second"),
        pytest.param(DUE + 2 * DAY, 172_800, 0.2, None, id="exactly two periods"),
        pytest.param(DUE + 3 * DAY, 259_200, 0.3, None, id="the cutoff exactly"),
        pytest.param(
            DUE + 3 * DAY + SECOND, 259_201, 1.0, "late submissions closed", id="a second past the cutoff"
        ),
        pytest.param(
            datetime(2026, 3, 1, 8, 59, 59, tzinfo=BERLIN),
            0,
            0.0,
            "the assignment opens",
            id="before it opens",
        ),
        pytest.param(datetime(2026, 3, 1, 9, 0, tzinfo=BERLIN), 0, 0.0, None, id="exactly when it opens"),
    ],
)
def test_ten_percent_per_day_started(
    submitted: datetime, late_seconds: int, penalty: float, refused: str | None
) -> None:
    measured = lateness(TEN_PERCENT_A_DAY, submitted)
    assert (measured.late_seconds, measured.penalty) == (late_seconds, penalty)
    if refused is None:
        assert measured.refused is None
    else:
        assert measured.refused is not None
        assert refused in measured.refused


def test_times_without_an_offset_are_read_in_the_policy_zone() -> None:
    assert TEN_PERCENT_A_DAY.due_at == datetime(2026, 3, 28, 11, 0, tzinfo=UTC)
    new_york = Policy.model_validate({"timezone": "America/New_York", "due_at": "2026-01-15T23:59:00"})
    assert new_york.due_at == datetime(2026, 1, 16, 4, 59, tzinfo=UTC)
    assert lateness(new_york, datetime(2026, 1, 16, 4, 59, tzinfo=UTC)).late_seconds == 0
    assert lateness(new_york, datetime(2026, 1, 16, 5, 0, tzinfo=UTC)).late_seconds == 60
    # An offset given wins over the zone.
    explicit = Policy.model_validate({"timezone": "Asia/Tokyo", "due_at": "2026-01-15T23:59:00+00:00"})
    assert explicit.due_at == datetime(2026, 1, 15, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("submitted", "late_seconds", "penalty"),
    [
        # Noon on Sunday, Berlin wall clock, is only 23 hours after noon on Saturday: the clocks
        # went forward in between. Periods are elapsed hours, not calendar days.
        pytest.param(datetime(2026, 3, 29, 12, 0, tzinfo=BERLIN), 23 * 3600, 0.1, id="next noon is 23 h"),
        pytest.param(datetime(2026, 3, 29, 13, 0, tzinfo=BERLIN), 24 * 3600, 0.1, id="24 h is one period"),
        pytest.param(datetime(2026, 3, 29, 13, 0, 1, tzinfo=BERLIN), 24 * 3600 + 1, 0.2, id="then two"),
    ],
)
def test_periods_are_elapsed_time_across_a_dst_change(
    submitted: datetime, late_seconds: int, penalty: float
) -> None:
    measured = lateness(TEN_PERCENT_A_DAY, submitted)
    assert (measured.late_seconds, measured.penalty, measured.refused) == (late_seconds, penalty, None)


@pytest.mark.parametrize(
    ("submitted", "late_seconds", "penalty", "refused"),
    [
        pytest.param(DUE + 2 * DAY, 0, 0.0, False, id="on time by the extension"),
        pytest.param(DUE + 2 * DAY + SECOND, 1, 0.1, False, id="a second after the extension"),
        pytest.param(DUE + 5 * DAY, 3 * 86_400, 0.3, False, id="the cutoff moved with it"),
        pytest.param(DUE + 5 * DAY + SECOND, 3 * 86_400 + 1, 1.0, True, id="past the moved cutoff"),
    ],
)
def test_an_extension_moves_the_due_time_and_the_cutoff(
    submitted: datetime, late_seconds: int, penalty: float, refused: bool
) -> None:
    measured = lateness(TEN_PERCENT_A_DAY, submitted, due_at=DUE + 2 * DAY)
    assert (measured.late_seconds, measured.penalty, measured.refused is not None) == (
        late_seconds,
        penalty,
        refused,
    )
    # Without the extension the same moment is past the cutoff (or later than it would be).
    assert lateness(TEN_PERCENT_A_DAY, submitted).late_seconds > late_seconds


def test_the_penalty_stops_at_everything() -> None:
    steep = Policy(due_at=DUE, late=LateRule(penalty_percent=40, period_hours=1))
    assert lateness(steep, DUE + 2 * HOUR).penalty == 0.8
    assert lateness(steep, DUE + 3 * HOUR).penalty == 1.0
    assert lateness(steep, DUE + 300 * HOUR).penalty == 1.0


def test_without_a_late_rule_nothing_is_accepted_after_the_due_time() -> None:
    strict = Policy(timezone="Europe/Berlin", due_at=DUE)
    assert lateness(strict, DUE).refused is None
    refused = lateness(strict, DUE + SECOND).refused
    assert refused == "the assignment was due at 2026-03-28T12:00+01:00"


@pytest.mark.parametrize(
    ("policy", "late_seconds", "penalty", "why"),
    [
        pytest.param(TEN_PERCENT_A_DAY, 0, 0.0, "on time", id="on time"),
        pytest.param(TEN_PERCENT_A_DAY, 1, 0.1, "1 day started late: -10 %", id="one day"),
        pytest.param(TEN_PERCENT_A_DAY, 86_401, 0.2, "2 days started late: -20 %", id="two days"),
        pytest.param(
            Policy(due_at=DUE, late=LateRule(penalty_percent=5, period_hours=1)),
            3 * 3600,
            0.15,
            "3 hours started late: -15 %",
            id="hours",
        ),
        pytest.param(
            Policy(due_at=DUE, late=LateRule(penalty_percent=12.5, period_hours=12)),
            13 * 3600,
            0.25,
            "2 periods of 12 h started late: -25 %",
            id="other periods",
        ),
        pytest.param(
            TEN_PERCENT_A_DAY,
            4 * 86_400 + 90,
            1.0,
            "4 d 1 min late, past the cutoff: -100 %",
            id="past cutoff",
        ),
        pytest.param(
            Policy(due_at=DUE), 3_600, 1.0, "1 h late, after the deadline: -100 %", id="no late rule"
        ),
    ],
)
def test_the_one_line_why(policy: Policy, late_seconds: int, penalty: float, why: str) -> None:
    assert explain(policy, late_seconds, penalty) == why
