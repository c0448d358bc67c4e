"""The policy page: the policy in force, the form that replaces it (read in the policy's zone), a
refused form shown again with its message, extensions granted and removed, grades released and
withheld; students get nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.dashboard.pages import CSRF_FIELD, SESSION_COOKIE, csrf_token
from tests.conftest import Api

PAGE = "/dashboard/courses/demo/assignments/hw5/policy"
POLICY_API = "/api/v1/courses/demo/assignments/hw5/policy"


@pytest.fixture
def csrf(api: Api, browser: TestClient) -> str:
    token = api.accounts.tokens["ta"]
    assert browser.post("/dashboard/sign-in", data={"token": token}).status_code == 303
    return csrf_token(api.client.app.state.settings, token)  # type: ignore[attr-defined]


POLICY_FORM = {
    "timezone": "Europe/Berlin",
    "opens_at": "",
    "due_at": "2030-05-01T23:59",
    "late_penalty_percent": "10",
    "late_period_hours": "24",
    "late_cutoff_hours": "72",
    "max_attempts": "3",
    "max_submissions": "",
    "counts": "best",
    "hold_grades": "on",
}


def test_the_form_replaces_the_policy_read_in_its_time_zone(api: Api, browser: TestClient, csrf: str) -> None:
    page = browser.get(PAGE)
    assert page.status_code == 200
    assert "the assignment&#39;s material" in page.text
    for label in (
        "Time zone",
        "Due at",
        "Penalty per period, %",
        "Which answer counts",
        "Hold grades until released",
    ):
        assert label in page.text, label

    saved = browser.post(PAGE, data=POLICY_FORM | {CSRF_FIELD: csrf})
    assert (saved.status_code, saved.headers["location"]) == (303, f"{PAGE}?done=policy")
    policy = api.get("ta", POLICY_API).json()
    assert policy["source"] == "course"
    assert policy["policy"]["due_at"] == "2030-05-01T23:59:00+02:00"  # Berlin summer time
    assert policy["policy"]["late"] == {"penalty_percent": 10.0, "period_hours": 24.0, "cutoff_hours": 72.0}
    assert (policy["policy"]["max_attempts"], policy["policy"]["counts"]) == (3, "best")
    assert policy["grades_visible_to_students"] is False

    shown = browser.get(saved.headers["location"]).text
    assert "The policy is saved" in shown
    assert 'value="2030-05-01T23:59"' in shown
    assert "10 % per 24 h started, closed 72 h after the due time" in shown
    assert "held until released" in shown

    reset = browser.post(f"{PAGE}/reset", data={CSRF_FIELD: csrf})
    assert reset.status_code == 303
    assert api.get("ta", POLICY_API).json()["source"] == "material"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"due_at": "tomorrow"}, "due_at"),
        ({"max_attempts": "0"}, "max_attempts"),
        ({"due_at": "2030-05-01T23:59", "opens_at": "2030-06-01T00:00"}, "opens_at must come before due_at"),
        ({"counts": "x" * 5000}, "not one this page sends"),
    ],
)
def test_a_refused_policy_shows_the_page_again_with_the_reason(
    api: Api, browser: TestClient, csrf: str, change: dict[str, str], message: str
) -> None:
    refused = browser.post(PAGE, data=POLICY_FORM | change | {CSRF_FIELD: csrf})
    assert refused.status_code == 422
    assert 'role="alert"' in refused.text
    assert message in refused.text
    assert 'id="policy-form"' in refused.text
    assert api.get("ta", POLICY_API).json()["source"] == "material"


def test_extensions_are_granted_listed_and_removed(api: Api, browser: TestClient, csrf: str) -> None:
    granted = browser.post(
        f"{PAGE}/extensions",
        data={
            CSRF_FIELD: csrf,
            "username": "student",
            "due_at": "2030-05-08T12:00",
            "reason": "ill <b>a week</b>",
        },
    )
    assert granted.status_code == 303
    page = browser.get(PAGE).text
    assert "<td>student</td>" in page
    assert "2030-05-08 12:00" in page
    assert "ill &lt;b&gt;a week&lt;/b&gt;" in page  # escaped, never markup
    extensions = api.get("ta", "/api/v1/courses/demo/assignments/hw5/extensions").json()["items"]
    assert [(item["student"], item["granted_by"]) for item in extensions] == [("student", "ta")]

    unknown = browser.post(
        f"{PAGE}/extensions", data={CSRF_FIELD: csrf, "username": "nobody", "due_at": "2030-05-08T12:00"}
    )
    assert unknown.status_code == 404
    assert "No student" in unknown.text
    no_time = browser.post(f"{PAGE}/extensions", data={CSRF_FIELD: csrf, "username": "student", "due_at": ""})
    assert no_time.status_code == 422

    removed = browser.post(f"{PAGE}/extensions/student/delete", data={CSRF_FIELD: csrf})
    assert removed.status_code == 303
    assert api.get("ta", "/api/v1/courses/demo/assignments/hw5/extensions").json()["items"] == []
    again = browser.post(f"{PAGE}/extensions/student/delete", data={CSRF_FIELD: csrf})
    assert again.status_code == 404


def test_release_and_withhold(api: Api, browser: TestClient, csrf: str) -> None:
    assert browser.post(PAGE, data=POLICY_FORM | {CSRF_FIELD: csrf}).status_code == 303
    assert browser.post(f"{PAGE}/release", data={CSRF_FIELD: csrf}).status_code == 303
    assert api.get("ta", POLICY_API).json()["grades_visible_to_students"] is True
    assert "held, released" in browser.get(f"{PAGE}?done=released").text
    assert browser.post(f"{PAGE}/withhold", data={CSRF_FIELD: csrf}).status_code == 303
    assert api.get("ta", POLICY_API).json()["grades_visible_to_students"] is False


def test_changes_need_the_csrf_token_and_students_are_refused(
    api: Api, browser: TestClient, csrf: str
) -> None:
    assert browser.post(f"{PAGE}/release", data={CSRF_FIELD: "0" * 64}).status_code == 403
    assert browser.post(PAGE, data=POLICY_FORM).status_code == 403
    assert api.get("ta", POLICY_API).json()["source"] == "material"
    browser.cookies.clear()
    as_student = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens['student']}"}
    refused = browser.get(PAGE, headers=as_student)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    # A link cannot make the page say anything but its fixed notes.
    assert "<script>" not in browser.get(f"{PAGE}?done=<script>", headers=as_student).text
