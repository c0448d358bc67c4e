"""The submission view, the override dialog and the manual-grading screen, as HTML over the real app
on SQLite and PostgreSQL: what a TA sees, what a save changes, a stale save (409) and hostile text."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient
from markupsafe import escape

from service.dashboard.pages import CSRF_FIELD, SESSION_COOKIE, csrf_token
from tests.conftest import Api

HOSTILE = '<script>alert("owned")</script><img src=x onerror="alert(1)"> & friends\n  indented line'
Q2_3 = r"\sum_{i=1}^t g_{h,i} \times \psi'(z_i) \times h_{t-1}"
GRADING = "/dashboard/courses/demo/assignments/hw5/questions/q3_2/grading"


def sign_in(browser: TestClient, api: Api, who: str = "ta") -> str:
    """Signs in; returns the CSRF token that the pages put in their forms."""
    token = api.accounts.tokens[who]
    assert browser.post("/dashboard/sign-in", data={"token": token}).status_code == 303
    return csrf_token(api.client.app.state.settings, token)  # type: ignore[attr-defined]


def submit_graded(api: Api, who: str, answers: dict[str, Any]) -> str:
    response = api.submit(who, answers)
    assert response.status_code == 202, response.text
    api.grade_pending()
    return str(response.json()["id"])


def section(page: str, element_id: str) -> str:
    """The inner HTML of the element with this id, up to the first closing tag of its kind."""
    at = page.index(f'id="{element_id}"')
    tag = page[page.rindex("<", 0, at) + 1 :].split(None, 1)[0]
    start = page.index(">", at) + 1
    return page[start : page.index(f"</{tag}>", start)]


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def put_grade(api: Api, who: str, submission: str, question: str, body: dict[str, Any]) -> Any:
    return api.client.put(
        f"/api/v1/submissions/{submission}/questions/{question}/grade",
        json=body,
        headers=api.accounts.header(who),
    )


# ---- the submission view --------------------------------------------------------------------


def test_the_submission_view_shows_answers_verbatim_formulas_results_and_timings(
    api: Api, browser: TestClient
) -> None:
    submission = submit_graded(
        api,
        "student",
        {"q1_1": {"choices": [2, 3]}, "q2_3": {"expression": Q2_3}, "q3_2": {"text": HOSTILE}},
    )
    sign_in(browser, api)
    page = browser.get(f"/dashboard/submissions/{submission}")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Submission of student</h1>" in page.text

    # The free-text answer: escaped (never markup), whitespace kept inside a pre-wrapped block.
    q3_2 = section(page.text, "question-q3_2")
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert str(escape(HOSTILE)) in q3_2
    assert '<pre class="verbatim answer">' in q3_2
    assert "pending_manual" in q3_2

    # The formula as the grader read it, typeset by the server as MathML, with its LaTeX.
    q2_3 = section(page.text, "question-q2_3")
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML"' in q2_3
    assert "<msubsup>" in q2_3
    latex = api.get("ta", f"/api/v1/submissions/{submission}").json()["questions"]["q2_3"]["details"][
        "read_as_latex"
    ]
    assert str(escape(latex)) in q2_3
    assert "Options 2, 3" in section(page.text, "question-q1_1")

    assert text_of(section(page.text, "total")).split() == ["1", "of", "27"]
    assert "On time" in section(page.text, "lateness")
    runs = text_of(section(page.text, "runs"))
    assert "first grading" in runs
    assert "done" in runs
    assert "1 of 3" in runs  # one claim of the job's three attempts
    revisions = text_of(section(page.text, "revisions"))
    assert "q2_3" in revisions
    assert "No grade changed by a person yet." in text_of(section(page.text, "audit"))
    assert f'href="/dashboard/submissions/{submission}/results.json"' in page.text
    assert 'id="override-dialog"' in page.text
    assert page.text.count(">Override</button>") == 3


def test_results_json_downloads_the_apis_document(api: Api, browser: TestClient) -> None:
    submission = submit_graded(api, "student", {"q1_1": {"choices": [2, 3]}})
    sign_in(browser, api)
    download = browser.get(f"/dashboard/submissions/{submission}/results.json")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="results-{submission}.json"'
    assert download.json() == api.get("ta", f"/api/v1/submissions/{submission}/results.json").json()


def test_only_the_courses_staff_see_a_submission(api: Api, browser: TestClient) -> None:
    submission = submit_graded(api, "student", {"q1_1": {"choices": [2, 3]}})
    for who, status in (("student", 403), ("student2", 403), ("other_ta", 404)):
        cookie = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens[who]}"}
        refused = browser.get(f"/dashboard/submissions/{submission}", headers=cookie)
        assert refused.status_code == status, who
        assert refused.headers["content-type"].startswith("text/html")
        assert "q1_1" not in refused.text
    # results.json has the API's access rules: its student may have it (grades are visible in
    # hw5), another student may not, and outside the course it does not exist.
    for who, status in (("student", 200), ("student2", 403), ("other_ta", 404)):
        cookie = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens[who]}"}
        assert (
            browser.get(f"/dashboard/submissions/{submission}/results.json", headers=cookie).status_code
            == status
        )
    sign_in(browser, api)
    missing = browser.get("/dashboard/submissions/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert browser.get("/dashboard/submissions/not-an-id").status_code == 422


def test_an_override_with_its_reason_changes_the_total_and_the_audit_log(
    api: Api, browser: TestClient
) -> None:
    submission = submit_graded(api, "student", {"q1_1": {"choices": [2, 3]}, "q1_2": {"choices": [3]}})
    csrf = sign_in(browser, api)
    path = f"/dashboard/submissions/{submission}"
    assert text_of(section(browser.get(path).text, "total")).split() == ["2", "of", "27"]

    # Without JavaScript, the Override button asks for the dialog open on its question.
    opened = browser.get(f"{path}?override=q1_1")
    assert '<dialog id="override-dialog" aria-labelledby="override-title" open>' in opened.text
    assert 'name="question" value="q1_1"' in opened.text
    assert 'name="score" type="number" min="0" step="any" required value="1"' in opened.text
    for label in ("Score", "Reason", "Feedback"):
        assert re.search(rf'<label for="override-\w+">{label}</label>', opened.text), label

    form = {"question": "q1_1", "score": "0", "reason": "", "feedback": "Copied.", CSRF_FIELD: csrf}
    assert browser.post(f"{path}/override", data=form | {CSRF_FIELD: "0" * 64}).status_code == 403
    reasonless = browser.post(f"{path}/override", data=form)
    assert reasonless.status_code == 422
    assert "needs a reason" in section(reasonless.text, "override-dialog")
    assert "Copied.</textarea>" in reasonless.text  # what the TA typed is kept
    assert browser.post(f"{path}/override", data=form | {"reason": "x", "score": "lots"}).status_code == 422
    assert browser.post(f"{path}/override", data=form | {"reason": "x", "score": "5"}).status_code == 422

    reason = '<b>Copied</b> from a neighbour "verbatim"'
    saved = browser.post(f"{path}/override", data=form | {"reason": reason})
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"{path}?saved=q1_1#audit"
    after = browser.get(saved.headers["location"])
    assert "Saved the grade of q1_1. The total is now 1 of 27." in text_of(after.text)
    assert text_of(section(after.text, "total")).split() == ["1", "of", "27"]
    audit = section(after.text, "audit")
    assert "<b>Copied" not in audit
    assert str(escape(reason)) in audit
    assert text_of(audit).split("UTC", 1)[1].split()[:5] == ["ta", "q1_1", "override", "1", "0"]
    q1_1 = section(after.text, "question-q1_1")
    assert "overridden, version 1" in q1_1
    assert "automatic: correct, 1" in q1_1
    assert 'data-version="1"' in q1_1  # the next override names the grade it changes
    assert 'name="version" value="1"' in browser.get(f"{path}?override=q1_1").text  # also without JS
    grade = api.get("ta", f"/api/v1/submissions/{submission}").json()["questions"]["q1_1"]
    assert (grade["score"], grade["feedback"], grade["person_grade"]["version"]) == (0.0, "Copied.", 1)


def test_a_stale_override_shows_the_grade_there_now_and_keeps_the_draft(
    api: Api, browser: TestClient
) -> None:
    submission = submit_graded(api, "student", {"q1_1": {"choices": [2, 3]}})
    csrf = sign_in(browser, api)
    path = f"/dashboard/submissions/{submission}"
    assert 'data-version=""' in section(browser.get(path).text, "question-q1_1")
    # Meanwhile the instructor overrides the same answer.
    first = put_grade(api, "instructor", submission, "q1_1", {"score": 0.5, "reason": "Half right."})
    assert first.status_code == 200

    form = {
        "question": "q1_1",
        "score": "0",
        "reason": "Mine.",
        "feedback": "",
        "version": "",
        CSRF_FIELD: csrf,
    }
    stale = browser.post(f"{path}/override", data=form)
    assert stale.status_code == 409
    dialog = section(stale.text, "override-dialog")
    assert 'role="alert"' in dialog
    assert "graded meanwhile" in dialog
    assert "0.5 points by instructor" in text_of(dialog)
    assert "Half right." in dialog
    assert "Mine.</textarea>" in dialog  # the TA's override is not lost
    assert 'name="version" value="1"' in dialog
    assert api.get("ta", f"/api/v1/submissions/{submission}").json()["score"] == 0.5

    # Saving again, knowingly on version 1, replaces the instructor's grade.
    again = browser.post(f"{path}/override", data=form | {"version": "1"})
    assert again.status_code == 303
    assert api.get("ta", f"/api/v1/submissions/{submission}").json()["score"] == 0.0


# ---- the manual-grading screen --------------------------------------------------------------


def test_grading_by_rubric_saves_and_shows_the_next_answer_until_none_is_left(
    api: Api, browser: TestClient
) -> None:
    first = submit_graded(api, "student", {"q3_2": {"text": HOSTILE}})
    second = submit_graded(api, "student2", {"q3_2": {"text": "Argmax is cheap."}})
    csrf = sign_in(browser, api)

    screen = browser.get(GRADING)
    assert screen.status_code == 200, screen.text
    assert "<h1>Grade q3_2</h1>" in screen.text
    assert "What are the drawbacks and advantages" in screen.text
    assert "Answer of student<" in screen.text
    assert "<script>alert" not in screen.text
    assert str(escape(HOSTILE)) in section(screen.text, "answer")
    first_item = "Non-differentiable, so no gradient reaches the queries and keys. (1 point)"
    assert f'<label for="rubric-1">{first_item}</label>' in screen.text
    assert '<label for="rubric-2">Cheap and interpretable. (1 point)</label>' in screen.text
    assert '<label for="comment">Comment</label>' in screen.text
    assert '<label for="score">Score</label>' in screen.text
    assert ">Save and next</button>" in screen.text
    assert ">Skip</button>" in screen.text

    # Skip: the next answer, the first still waiting.
    cursor = re.search(r'id="skip-form".*?name="after" value="([^"]+)"', screen.text, re.DOTALL)
    assert cursor is not None
    skipped = browser.get(GRADING, params={"after": cursor.group(1)})
    assert "Answer of student2<" in skipped.text
    past_the_end = re.search(r'id="skip-form".*?name="after" value="([^"]+)"', skipped.text, re.DOTALL)
    assert past_the_end is not None
    nothing_after = browser.get(GRADING, params={"after": past_the_end.group(1)})
    assert "Nothing left to grade after the answers you skipped." in text_of(nothing_after.text)

    # Save and next: item 1 applied, a comment; the next answer comes up.
    form = {
        "submission": first,
        "rubric_count": "2",
        "rubric_1": "on",
        "comment": "<i>Good</i> point.",
        "score": "",
    }
    assert browser.post(GRADING, data=form).status_code == 403  # no CSRF token
    saved = browser.post(GRADING, data=form | {CSRF_FIELD: csrf})
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"{GRADING}?graded={first}"
    graded = api.get("ta", f"/api/v1/submissions/{first}").json()["questions"]["q3_2"]
    assert (graded["score"], graded["feedback"]) == (1.0, "<i>Good</i> point.")
    assert [item["applied"] for item in graded["person_grade"]["rubric"]] == [True, False]
    following = browser.get(saved.headers["location"])
    assert "Answer of student2<" in following.text
    assert f'href="/dashboard/submissions/{first}"' in following.text

    # A score given wins over the rubric's sum; then the queue is empty.
    last = {"submission": second, "rubric_count": "2", "rubric_2": "on", "comment": "", "score": "1.5"}
    assert browser.post(GRADING, data=last | {CSRF_FIELD: csrf}).status_code == 303
    assert api.get("ta", f"/api/v1/submissions/{second}").json()["questions"]["q3_2"]["score"] == 1.5
    done = browser.get(GRADING)
    assert "Nothing left to grade." in text_of(done.text)
    assert "Save and next" not in done.text


def test_a_grade_saved_meanwhile_by_another_ta_is_shown_not_overwritten(
    api: Api, browser: TestClient
) -> None:
    first = submit_graded(api, "student", {"q3_2": {"text": "Argmax has no gradient."}})
    submit_graded(api, "student2", {"q3_2": {"text": "Argmax is cheap."}})
    csrf = sign_in(browser, api)
    assert "Answer of student<" in browser.get(GRADING).text
    # The instructor grades the same answer while the TA reads it.
    assert (
        put_grade(api, "instructor", first, "q3_2", {"score": 2, "feedback": "Full marks."}).status_code
        == 200
    )

    form = {
        "submission": first,
        "rubric_count": "2",
        "rubric_1": "on",
        "comment": "My comment.",
        CSRF_FIELD: csrf,
    }
    stale = browser.post(GRADING, data=form)
    assert stale.status_code == 409
    problem = text_of(section(stale.text, "grading-problem"))
    assert "graded meanwhile" in problem
    assert "instructor graded it: 2 points (version 1), comment Full marks." in " ".join(problem.split())
    assert "Your grade was not saved: rubric items 1, comment" in problem
    assert "My comment." in problem
    assert "Answer of student2<" in stale.text  # the next answer waits below
    assert api.get("ta", f"/api/v1/submissions/{first}").json()["questions"]["q3_2"]["score"] == 2.0


def test_a_refused_grade_keeps_what_the_ta_entered(api: Api, browser: TestClient) -> None:
    submission = submit_graded(api, "student", {"q3_2": {"text": "Argmax has no gradient."}})
    csrf = sign_in(browser, api)
    form = {
        "submission": submission,
        "rubric_count": "2",
        "rubric_2": "on",
        "comment": "Kept.",
        CSRF_FIELD: csrf,
    }
    for bad, message in (
        ({"score": "3"}, "between 0 and 2"),
        ({"score": "many"}, "Score must be a number"),
        ({"score": "-1"}, "greater than or equal to 0"),
        ({"submission": "nope"}, "names no submission"),
        ({"comment": "bad\u0000"}, "Comment: the feedback holds a NUL character"),
    ):
        refused = browser.post(GRADING, data=form | bad)
        assert refused.status_code == 422, bad
        assert message in text_of(section(refused.text, "grading-problem")), (bad, refused.text)
    refused = browser.post(GRADING, data=form | {"score": "3"})
    assert "Kept.</textarea>" in refused.text
    assert re.search(r'id="rubric-2" name="rubric_2" value="on" checked', refused.text)
    assert not re.search(r'id="rubric-1" name="rubric_1" value="on" checked', refused.text)
    assert (
        api.get("ta", f"/api/v1/submissions/{submission}").json()["questions"]["q3_2"]["person_grade"] is None
    )


def test_the_grading_screen_is_for_the_courses_staff(api: Api, browser: TestClient) -> None:
    cookie = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens['student']}"}
    assert browser.get(GRADING, headers=cookie).status_code == 403
    cookie = {"Cookie": f"{SESSION_COOKIE}={api.accounts.tokens['other_ta']}"}
    assert browser.get(GRADING, headers=cookie).status_code == 404
    sign_in(browser, api)
    assert browser.get(GRADING.replace("q3_2", "q9")).status_code == 404
    assert browser.get(GRADING, params={"after": "not-a-cursor!"}).status_code == 422
    assert "Nothing left to grade." in text_of(browser.get(GRADING).text)
