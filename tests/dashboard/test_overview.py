"""The assignment overview: its counts and chart from graded submissions, its links, and a regrade
started from its form (htmx and plain), polled to the end, with the report of changed scores."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.dashboard.overview import timeline
from service.dashboard.pages import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, csrf_token
from service.submissions.schemas import DaySubmissions
from tests.conftest import Api
from tests.test_regrades import OFF_BY_HALF, RIGHT, load_hw5_with_tolerance

OVERVIEW = "/dashboard/courses/demo/assignments/hw5"
HTMX = {"HX-Request": "true"}


def sign_in(browser: TestClient, api: Api, who: str = "ta") -> str:
    """Signs in; returns the CSRF token of the session."""
    token = api.accounts.tokens[who]
    assert browser.post("/dashboard/sign-in", data={"token": token}).status_code == 303
    return csrf_token(api.client.app.state.settings, token)  # type: ignore[attr-defined]


def submit_graded(api: Api) -> None:
    for who, answers in (
        ("student", OFF_BY_HALF | {"q3_2": {"text": "Argmax has no gradient <b>at all</b>."}}),
        ("student2", RIGHT | {"q1_1": {"choices": [2, 3]}}),
        ("student2", {"q3_2": {"text": "Second try."}}),
    ):
        assert api.submit(who, answers).status_code == 202
    assert api.grade_pending() == 3


def test_the_overview_counts_charts_and_links_everything(api: Api, browser: TestClient) -> None:
    submit_graded(api)
    sign_in(browser, api)
    page = browser.get(OVERVIEW)
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>HW5: Recurrent networks and attention</h1>" in html
    counts = dict(re.findall(r"<dt>([^<]+)</dt><dd>(\d+)</dd>", html))
    # Two answers to q3_2 wait for a person; nothing failed or waits for a worker.
    assert counts == {
        "Submissions": "3",
        "Graded": "3",
        "Pending manual": "2",
        "Errors": "0",
        "Being graded": "0",
    }
    chart = re.search(r'<svg id="submissions-chart" role="img" aria-label="([^"]+)"', html)
    assert chart is not None
    assert "3 in all" in chart.group(1)
    assert html.count('class="bar"') == 1  # all three came in today
    for link in (
        f"{OVERVIEW}/gradebook",
        f"{OVERVIEW}/policy",
        f"{OVERVIEW}/questions/q3_2/statistics",
        f"{OVERVIEW}/questions/q3_2/grading",
        f"{OVERVIEW}/questions/q1_1/statistics",
    ):
        assert f'href="{link}"' in html, link
    form = re.search(r'<form id="regrade-form".*?</form>', html, re.S)
    assert form is not None
    assert '<option value="">All questions</option>' in form.group(0)
    assert re.search(
        r'<input id="regrade-keep-manual" name="keep_manual" type="checkbox" checked>', form.group(0)
    )
    assert '<label for="regrade-question">Question</label>' in form.group(0)
    assert ">Start regrade</button>" in form.group(0)


def test_an_empty_assignment_says_so(api: Api, browser: TestClient) -> None:
    sign_in(browser, api)
    html = browser.get(OVERVIEW).text
    assert "No submissions yet." in html
    assert "<dt>Submissions</dt><dd>0</dd>" in html


def test_a_regrade_from_the_form_polls_until_done_and_reports_the_changed_scores(
    api: Api, browser: TestClient, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    submit_graded(api)
    load_hw5_with_tolerance(session_factory, tmp_path / "hw5-v2", "0.6")
    csrf = sign_in(browser, api)
    started = browser.post(
        f"{OVERVIEW}/regrades",
        data={"question": "q3_1", "students": "", "keep_manual": "on"},
        headers=HTMX | {CSRF_HEADER: csrf},
    )
    assert started.status_code == 200, started.text
    # Two submissions answered q3_1 (student2's second did not).
    assert '<progress id="regrade-progress" max="2" value="0">' in started.text
    poll = re.search(r'hx-get="(/dashboard/regrades/[0-9a-f-]{36})" hx-trigger="every 1s"', started.text)
    assert poll is not None, started.text
    assert "regrade-changes" not in started.text

    assert api.grade_pending() == 2
    done = browser.get(poll.group(1), headers=HTMX)
    assert done.status_code == 200
    assert "hx-trigger" not in done.text  # the polling stops
    assert '<progress id="regrade-progress" max="2" value="2">' in done.text
    rows = re.findall(
        r"<tr>\s*<td><a [^>]+>([^<]+)</a></td>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>",
        done.text,
    )
    assert rows == [("student", "q3_1", "0.0 (incorrect)", "2.0 (correct)")]
    # Without htmx the fragment's address leads to the overview showing the same report.
    plain = browser.get(poll.group(1))
    assert plain.status_code == 303
    assert "regrade-changes" in browser.get(plain.headers["location"]).text


def test_a_plain_form_regrade_redirects_to_the_overview_with_its_progress(
    api: Api, browser: TestClient
) -> None:
    submit_graded(api)
    csrf = sign_in(browser, api)
    # No keep_manual field: the unchecked box clears people's grades of the regraded question.
    response = browser.post(
        f"{OVERVIEW}/regrades", data={CSRF_FIELD: csrf, "question": "", "students": "student"}
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert re.fullmatch(rf"{OVERVIEW}\?regrade=[0-9a-f-]{{36}}#regrade", location)
    page = browser.get(location)
    assert 'id="regrade-progress"' in page.text
    assert "Regrade of all questions" in page.text
    regrade_id = location.split("=")[1].split("#")[0]
    view = api.get("ta", f"/api/v1/regrades/{regrade_id}").json()
    assert (view["students"], view["keep_manual"], view["progress"]["total"]) == (["student"], False, 1)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"question": "q9"}, "No question &#39;q9&#39;"),
        ({"question": "", "students": "nobody"}, "not students of this course"),
        ({"question": "", "students": "x" * 65}, "The regrade form has a problem"),
        ({"question": "", "students": "a " * 70_000}, "Name at most"),
    ],
)
def test_a_bad_regrade_form_is_a_message_not_a_500(
    api: Api, browser: TestClient, form: dict[str, str], message: str
) -> None:
    csrf = sign_in(browser, api)
    fragment = browser.post(f"{OVERVIEW}/regrades", data=form, headers=HTMX | {CSRF_HEADER: csrf})
    assert fragment.status_code == 200  # htmx swaps only 2xx: the message comes as a fragment
    assert 'role="alert"' in fragment.text
    assert message in fragment.text
    page = browser.post(f"{OVERVIEW}/regrades", data=form | {CSRF_FIELD: csrf})
    assert page.status_code == 422
    assert message in page.text
    assert page.headers["content-type"].startswith("text/html")


def test_regrades_need_the_csrf_token_and_students_get_no_overview(api: Api, browser: TestClient) -> None:
    sign_in(browser, api)
    forged = browser.post(f"{OVERVIEW}/regrades", data={"question": ""}, headers=HTMX)
    assert forged.status_code == 403
    assert api.get("ta", "/api/v1/courses/demo/assignments/hw5/regrades").json()["items"] == []
    as_student = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens['student']}"}
    browser.cookies.clear()
    refused = browser.get(OVERVIEW, headers=as_student)
    assert refused.status_code == 403
    assert "Only TAs and instructors" in refused.text
    other = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens['other_ta']}"}
    assert browser.get(OVERVIEW, headers=other).status_code == 404


def test_the_timeline_scales_bars_to_the_busiest_day() -> None:
    chart = timeline(
        [
            DaySubmissions(day=date(2026, 3, 1), count=2),
            DaySubmissions(day=date(2026, 3, 2), count=0),
            DaySubmissions(day=date(2026, 3, 3), count=4),
        ]
    )
    assert chart is not None
    assert [bar.height for bar in chart.bars] == [70.0, 0.0, 140.0]
    assert [bar.y for bar in chart.bars] == [70.0, 140.0, 0.0]
    assert (
        chart.label == "Submissions per day from 2026-03-01 to 2026-03-03: 6 in all, at most 4 on 2026-03-03."
    )
    assert timeline([]) is None
