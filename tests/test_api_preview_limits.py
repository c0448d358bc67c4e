"""The formula preview parses on the request path: its input is bounded below the submission's and
its rate is limited per user, counted in the database like the submissions' limit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Settings
from service.models import RateLimitEvent
from tests.conftest import Api

PREVIEW = "/api/v1/courses/demo/assignments/hw5/questions/q2_3/preview"
FORMULA = {"expression": r"\sum_{i=1}^t g_{h,i} \times \psi'(z_i) \times h_{t-1}", "format": "latex"}


def limit_previews(api: Api, limit: int, window_seconds: float) -> None:
    original: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    api.client.app.state.settings = original.model_copy(  # type: ignore[attr-defined]
        update={"rate_limit_previews": limit, "rate_limit_previews_window_seconds": window_seconds}
    )


@pytest.fixture
def limited(api: Api) -> Iterator[Api]:
    original: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    limit_previews(api, 3, 60.0)
    yield api
    api.client.app.state.settings = original  # type: ignore[attr-defined]


def preview(api: Api, who: str, body: dict[str, str] = FORMULA) -> int:
    return api.client.post(PREVIEW, json=body, headers=api.accounts.header(who)).status_code


def test_a_preview_is_bounded_below_the_submission_limit(api: Api) -> None:
    # The same kind of long subscript that cost ~70 ms to parse at 1,900 characters.
    subscript = "z_{" + "t-" * 247 + "t1}"
    assert len(subscript) == 500
    assert preview(api, "student", {"expression": subscript, "format": "latex"}) == 200
    too_long = api.client.post(
        PREVIEW,
        json={"expression": subscript + " ", "format": "latex"},
        headers=api.accounts.header("student"),
    )
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "invalid_request"
    assert "500" in too_long.text
    # A submission still takes the longer formula (it is parsed off the request path).
    assert (
        api.submit("student", {"q2_3": {"expression": subscript + " ", "format": "latex"}}).status_code == 202
    )


def test_previews_over_the_limit_get_429_with_retry_after(limited: Api, session: Session) -> None:
    for _ in range(3):
        assert preview(limited, "student") == 200
    refused = limited.client.post(PREVIEW, json=FORMULA, headers=limited.accounts.header("student"))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert "formula previews" in error["message"]
    assert error["details"] == {"limit": 3, "window_seconds": 60.0}
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Per user: another student, and the same student's submissions, are not affected.
    assert preview(limited, "student2") == 200
    assert limited.submit("student", {"q1_2": {"choices": [3]}}).status_code == 202
    # Refused previews are not counted: only the three accepted ones and student2's are stored.
    assert session.scalar(select(func.count()).select_from(RateLimitEvent)) == 4


def test_the_preview_window_slides_and_old_rows_are_dropped(limited: Api, session: Session) -> None:
    limit_previews(limited, 2, 0.5)
    assert preview(limited, "student") == 200
    assert preview(limited, "student") == 200
    assert preview(limited, "student") == 429
    time.sleep(0.6)
    assert preview(limited, "student") == 200
    # The rows that left the window were deleted by the new preview: the table stays small.
    assert session.scalar(select(func.count()).select_from(RateLimitEvent)) == 1
