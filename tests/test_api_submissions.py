"""The submissions API over HTTP (in-process ASGI), graded by the real grading loop, on both backends."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tests.conftest import Api

HANDIN = Path(__file__).parent / "data" / "hw5-student-answers.md"


def handin_free_text_3_2() -> str:
    """The student's own answer to 3-2, cut from the hand-in."""
    text = HANDIN.read_text(encoding="utf-8")
    match = re.search(r"^3-2:\s*$(.*?)^Question 4:", text, flags=re.M | re.S)
    assert match, "the hand-in's 3-2 section was not found"
    return match.group(1).strip()


# The hand-in mapped to question ids, as in the SPEC's mapping table.
HANDIN_ANSWERS = {
    "q1_1": {"choices": [2, 3]},
    "q1_2": {"choices": [3]},
    "q1_3": {"choices": [3]},
    "q3_1": {"value": [6, 1, 2]},
}


def test_handin_is_graded_over_http(api: Api) -> None:
    answers = HANDIN_ANSWERS | {"q3_2": {"text": handin_free_text_3_2()}}
    response = api.submit("student", answers)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert response.headers["location"] == f"/api/v1/submissions/{accepted['id']}"
    assert len(api.executor.notified) == 1

    queued = api.get("student", response.headers["location"]).json()
    assert queued["status"] == "queued"
    assert queued["questions"] == {}

    assert api.grade_pending() == 1
    result = api.get("student", response.headers["location"]).json()
    assert result["status"] == "graded"
    verdicts = {key: value["verdict"] for key, value in result["questions"].items()}
    assert verdicts == {
        "q1_1": "correct",
        "q1_2": "correct",
        "q1_3": "correct",
        "q3_1": "correct",
        "q3_2": "pending_manual",
    }
    assert result["score"] == 5.0  # 1 + 1 + 1 + 2; q3_2 waits for a TA
    assert result["max_score"] == 27.0  # 17 + the 10 of the q4 notebook
    assert result["questions"]["q3_1"] == {
        "verdict": "correct",
        "score": 2.0,
        "max_score": 2.0,
        "feedback": "Correct.",
        "details": None,
        "person_grade": None,
        "hidden": None,
    }
    # A student sees neither the key nor the answers echoed as staff data.
    assert result["answers"] is None
    assert "correct" not in str(result["questions"]["q1_1"]["details"])


def test_wrong_answers_get_feedback_and_partial_credit(api: Api) -> None:
    response = api.submit(
        "student",
        {
            "q1_1": {"choices": [1, 2]},  # net-correct: (1 right - 1 wrong) / 2 = 0
            "q3_1": {"value": [6, 1]},
            "q3_1b": {"value": [5.9, 1.0, 2.1]},
        },
    )
    api.grade_pending()
    result = api.get("student", response.headers["location"]).json()
    questions = result["questions"]
    assert questions["q1_1"]["verdict"] == "incorrect"
    assert questions["q3_1"]["verdict"] == "incorrect"
    assert questions["q3_1"]["feedback"] == "Wrong shape: expected (3,), got (2,)."
    assert questions["q3_1b"]["verdict"] == "incorrect"
    assert "furthest off" in questions["q3_1b"]["feedback"]

    partial = api.submit("student", {"q1_1": {"choices": [2]}})
    api.grade_pending()
    q1_1 = api.get("student", partial.headers["location"]).json()["questions"]["q1_1"]
    assert (q1_1["verdict"], q1_1["score"]) == ("partial", 0.5)


def test_softmax_attention_is_graded_with_its_tolerance(api: Api) -> None:
    keys = np.array([[0, -1], [1, 1], [2, -1], [2, 2]], dtype=float)
    values = np.array([[1, 0, 3], [2, 4, 1], [0, 5, 2], [6, 1, 2]], dtype=float)
    scores = keys @ np.array([1.0, 2.0])
    weights = np.exp(scores - scores.max())
    expected = (weights / weights.sum()) @ values
    rounded = np.round(expected, 3).tolist()  # within rtol 1e-3
    response = api.submit("student", {"q3_1b": {"value": rounded}})
    api.grade_pending()
    assert (
        api.get("student", response.headers["location"]).json()["questions"]["q3_1b"]["verdict"] == "correct"
    )


def hard_attention(inputs: dict[str, list[object]]) -> list[float]:
    q = np.asarray(inputs["q"], dtype=float)
    keys = np.asarray(inputs["keys"], dtype=float)
    values = np.asarray(inputs["values"], dtype=float)
    return list(values[int(np.argmax(keys @ q))])


def test_variant_round_trip(api: Api) -> None:
    mine = api.get("student", "/api/v1/courses/demo/assignments/hw5/questions/q3_3/variant")
    assert mine.status_code == 200
    inputs = mine.json()["inputs"]
    assert set(inputs) == {"q", "keys", "values"}
    assert np.asarray(inputs["keys"]).shape == (4, 2)
    # The same student always gets the same variant; another student gets another one.
    assert (
        api.get("student", "/api/v1/courses/demo/assignments/hw5/questions/q3_3/variant").json()
        == mine.json()
    )
    theirs = api.get("student2", "/api/v1/courses/demo/assignments/hw5/questions/q3_3/variant").json()[
        "inputs"
    ]
    assert theirs != inputs

    own = api.submit("student", {"q3_3": {"value": hard_attention(inputs)}})
    borrowed = api.submit("student2", {"q3_3": {"value": hard_attention(inputs)}})
    api.grade_pending()
    assert api.get("student", own.headers["location"]).json()["questions"]["q3_3"]["verdict"] == "correct"
    their_result = api.get("student2", borrowed.headers["location"]).json()["questions"]["q3_3"]
    if hard_attention(theirs) != hard_attention(inputs):
        assert their_result["verdict"] == "incorrect"


def test_idempotency_key_returns_the_first_submission(api: Api) -> None:
    first = api.submit("student", HANDIN_ANSWERS, **{"Idempotency-Key": "attempt-1"})
    again = api.submit("student", HANDIN_ANSWERS, **{"Idempotency-Key": "attempt-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    other_body = api.submit("student", {"q1_2": {"choices": [1]}}, **{"Idempotency-Key": "attempt-1"})
    assert other_body.status_code == 409
    assert other_body.json()["error"]["code"] == "conflict"
    # The key is per student: another student's same key is a new submission.
    theirs = api.submit("student2", HANDIN_ANSWERS, **{"Idempotency-Key": "attempt-1"})
    assert theirs.status_code == 202
    assert theirs.json()["id"] != first.json()["id"]
    listed = api.get("student", "/api/v1/courses/demo/assignments/hw5/submissions").json()["items"]
    assert [item["id"] for item in listed] == [first.json()["id"]]
    assert api.grade_pending() == 2


def test_bad_answers_are_refused_with_one_error_shape(api: Api) -> None:
    cases = [
        ({"q9": {"choices": [1]}}, "q9"),  # unknown question
        ({"q1_2": {"choices": "3"}}, "q1_2"),  # wrong type
        ({"q1_2": {"value": [3]}}, "q1_2"),  # shape of another kind
        ({"q3_1": {"value": "6, 1, 2"}}, "q3_1"),
        ({"q3_2": {"text": 42}}, "q3_2"),
    ]
    for answers, question in cases:
        response = api.submit("student", answers)
        assert response.status_code == 422, (answers, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_answer"
        assert question in error["details"]
    empty = api.submit("student", {})
    assert empty.status_code == 422
    malformed = api.client.post(
        "/api/v1/courses/demo/assignments/hw5/submissions",
        content=b"{not json",
        headers=api.accounts.header("student") | {"Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "invalid_request"
    assert api.executor.notified == []


def test_out_of_range_picks_and_ragged_tensors_are_invalid_verdicts(api: Api) -> None:
    response = api.submit(
        "student",
        {"q1_2": {"choices": [7]}, "q1_1": {"choices": [2, 2]}, "q3_1": {"value": [[6, 1], [2]]}},
    )
    api.grade_pending()
    questions = api.get("student", response.headers["location"]).json()["questions"]
    assert questions["q1_2"]["verdict"] == "invalid"
    assert "no option 7" in questions["q1_2"]["feedback"]
    assert questions["q1_1"]["verdict"] == "invalid"
    assert questions["q3_1"]["verdict"] == "invalid"
    assert "ragged" in questions["q3_1"]["feedback"]


def test_oversized_and_deeply_nested_bodies_are_4xx(api: Api) -> None:
    huge = api.submit("student", {"q3_2": {"text": "x" * 2_000_000}})
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "payload_too_large"
    nested = b'{"answers": {"q3_1": {"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}}"
    response = api.client.post(
        "/api/v1/courses/demo/assignments/hw5/submissions",
        content=nested,
        headers=api.accounts.header("student") | {"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


def test_authentication_is_required(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer ag_not-a-token"}, {"Authorization": "Basic abc"}):
        response = api.client.get("/api/v1/courses/demo/assignments/hw5", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"
    anonymous = api.client.post(
        "/api/v1/courses/demo/assignments/hw5/submissions", json={"answers": HANDIN_ANSWERS}
    )
    assert anonymous.status_code == 401


def test_students_see_only_their_own_submissions(api: Api) -> None:
    mine = api.submit("student", HANDIN_ANSWERS).json()
    theirs = api.submit("student2", {"q1_2": {"choices": [1]}}).json()
    api.grade_pending()
    assert api.get("student", f"/api/v1/submissions/{mine['id']}").status_code == 200
    forbidden = api.get("student", f"/api/v1/submissions/{theirs['id']}")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    # Someone outside the course cannot even learn that the submission exists.
    assert api.get("outsider", f"/api/v1/submissions/{mine['id']}").status_code == 404
    assert api.get("other_ta", f"/api/v1/submissions/{mine['id']}").status_code == 404
    assert api.get("student", "/api/v1/submissions/00000000-0000-0000-0000-000000000000").status_code == 404

    own_list = api.get("student", "/api/v1/courses/demo/assignments/hw5/submissions").json()["items"]
    assert [item["id"] for item in own_list] == [mine["id"]]
    for staff in ("ta", "instructor"):
        listed = api.get(staff, "/api/v1/courses/demo/assignments/hw5/submissions").json()["items"]
        assert {item["id"] for item in listed} == {mine["id"], theirs["id"]}
        detailed = api.get(staff, f"/api/v1/submissions/{theirs['id']}").json()
        assert detailed["answers"] == {"q1_2": {"choices": [1]}}
        assert detailed["questions"]["q1_2"]["details"]["correct"] == [3]


def test_assignments_of_other_courses_do_not_exist_for_the_caller(api: Api) -> None:
    for path in (
        "/api/v1/courses/demo/assignments/hw5",
        "/api/v1/courses/demo/assignments/hw5/submissions",
        "/api/v1/courses/demo/assignments/hw5/questions/q3_3/variant",
    ):
        assert api.get("outsider", path).status_code == 404
        assert api.get("other_ta", path).status_code == 404
    assert api.submit("outsider", HANDIN_ANSWERS).status_code == 404
    assert api.get("student", "/api/v1/courses/other/assignments/other1").status_code == 404
    assert api.get("student", "/api/v1/courses/demo/assignments/nope").status_code == 404
    assert api.get("outsider", "/api/v1/courses/other/assignments/other1").status_code == 200


def test_assignment_view_shows_questions_without_keys(api: Api) -> None:
    response = api.get("student", "/api/v1/courses/demo/assignments/hw5")
    assert response.status_code == 200
    view = response.json()
    assert view["slug"] == "hw5"
    assert view["your_role"] == "student"
    assert [q["id"] for q in view["questions"]] == [
        "q1_1",
        "q1_2",
        "q1_3",
        "q2_1",
        "q2_2",
        "q2_3",
        "q2_4",
        "q3_1",
        "q3_1b",
        "q3_3",
        "q3_2",
        "q4",
    ]
    assert view["max_score"] == 27.0
    text = response.text
    for secret in ('"correct"', "hard_attention", "attention_variant", "rubric", "q2_1_point", "reference"):
        assert secret not in text
    q1_1 = view["questions"][0]
    assert q1_1["config"]["multiple"] is True
    assert len(q1_1["config"]["options"]) == 3
    q3_1 = view["questions"][7]
    assert q3_1["config"]["inputs"]["q"] == [1, 2]
    assert view["questions"][9]["config"]["per_student_variant"] is True
    q2_3 = view["questions"][5]["config"]
    assert {"name": "g_h", "shape": [], "sequence": True, "latex": ["g_{h,#}", "g_{h#}"]}.items() <= next(
        symbol for symbol in q2_3["symbols"] if symbol["name"] == "g_h"
    ).items()
    assert q2_3["indices"] == [{"name": "t", "low": 1, "high": 3}]


def test_variant_of_a_question_without_inputs_is_4xx(api: Api) -> None:
    assert (
        api.get("student", "/api/v1/courses/demo/assignments/hw5/questions/q1_1/variant").status_code == 422
    )
    assert api.get("student", "/api/v1/courses/demo/assignments/hw5/questions/q0/variant").status_code == 404


def test_openapi_documents_the_routes(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert "/api/v1/courses/{course}/assignments/{assignment}/submissions" in paths
    post = paths["/api/v1/courses/{course}/assignments/{assignment}/submissions"]["post"]
    assert {"202", "401", "404", "409", "413", "422"} <= set(post["responses"])
    assert api.client.get("/docs").status_code == 200


def test_a_ta_grades_the_free_text_answer(api: Api) -> None:
    submitted = api.submit("student", HANDIN_ANSWERS | {"q3_2": {"text": handin_free_text_3_2()}}).json()
    path = f"/api/v1/submissions/{submitted['id']}/questions/q3_2/grade"
    early = api.client.put(path, json={"score": 2}, headers=api.accounts.header("ta"))
    assert early.status_code == 409  # not graded yet
    api.grade_pending()

    by_student = api.client.put(path, json={"score": 2}, headers=api.accounts.header("student"))
    assert by_student.status_code == 403
    assert api.client.put(path, json={"score": 2}, headers=api.accounts.header("other_ta")).status_code == 404
    too_many = api.client.put(path, json={"score": 2.5}, headers=api.accounts.header("ta"))
    assert too_many.status_code == 422
    unanswered = f"/api/v1/submissions/{submitted['id']}/questions/q3_3/grade"
    assert api.client.put(unanswered, json={"score": 1}, headers=api.accounts.header("ta")).status_code == 404

    graded = api.client.put(
        path,
        json={"score": 1.5, "feedback": "Drawback and interpretability: yes."},
        headers=api.accounts.header("ta"),
    )
    assert graded.status_code == 200, graded.text
    view = api.get("student", f"/api/v1/submissions/{submitted['id']}").json()
    assert view["questions"]["q3_2"] == {
        "verdict": "partial",
        "score": 1.5,
        "max_score": 2.0,
        "feedback": "Drawback and interpretability: yes.",
        "details": None,
        "person_grade": {"kind": "manual", "rubric": [], "version": None},
        "hidden": None,
    }
    assert view["score"] == 6.5


HANDIN_Q2_LATEX = {
    "q2_1": {"expression": r"- \sum_{i=1}^2 y_{t,i} \times (1 - \hat{y}_{t,i})", "format": "latex"},
    "q2_2": {"expression": r"g_{ot} \times w_{yh} \times w_{hh}^{t-i} \times \prod_{k=0}^{t-i-1} \psi'(z_t)"},
    "q2_3": {"expression": r"\sum_{i=1}^t g_{h,i} \times \psi'(z_i) \times h_{t-1}"},
    "q2_4": {"expression": r"\sum_{t=1}^3 gw_{hh,t}"},
}


def test_handin_gradient_formulas_are_graded_over_http(api: Api) -> None:
    response = api.submit("student", HANDIN_Q2_LATEX)
    assert response.status_code == 202, response.text
    api.grade_pending()
    questions = api.get("student", response.headers["location"]).json()["questions"]
    assert {key: q["verdict"] for key, q in questions.items()} == {
        "q2_1": "incorrect",
        "q2_2": "incorrect",
        "q2_3": "incorrect",
        "q2_4": "correct",
    }
    assert "a scalar, but a vector of 2 is due" in questions["q2_1"]["feedback"]
    assert "index of h" in questions["q2_3"]["feedback"]
    assert questions["q2_4"]["score"] == 2.0
    assert questions["q2_3"]["details"] is None  # how it was read is staff detail


def test_formula_answers_of_the_wrong_form_are_refused(api: Api) -> None:
    for answer in (
        {"expression": 42},
        {"expression": "x" * 2_001},
        {"expression": "y", "format": "markdown"},
    ):
        response = api.submit("student", {"q2_1": answer})
        assert response.status_code == 422, response.text
        assert "q2_1" in response.json()["error"]["details"]


def test_preview_shows_a_text_answer_as_latex_to_typeset(api: Api) -> None:
    path = "/api/v1/courses/demo/assignments/hw5/questions/q2_2/preview"
    answer = {
        "expression": "transpose(w_yh) @ g_o[t] * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i+1, t+1))"
    }
    read = api.client.post(path, json=answer, headers=api.accounts.header("student"))
    assert read.status_code == 200, read.text
    assert read.json()["format"] == "text"
    assert read.json()["read_as_latex"] == (
        r"w_{yh}^\top g_{o,t} \times w_{hh}^{t - i} \times \prod_{k=i + 1}^{t} \psi'\left(z_{k}\right)"
    )
    described = api.client.get("/openapi.json").json()["components"]["schemas"]["PreviewView"]
    assert "LaTeX" in described["properties"]["read_as_latex"]["description"]


def test_preview_reads_without_grading(api: Api) -> None:
    path = "/api/v1/courses/demo/assignments/hw5/questions/q2_3/preview"
    headers = api.accounts.header("student")
    read = api.client.post(path, json=HANDIN_Q2_LATEX["q2_3"], headers=headers)
    assert read.status_code == 200
    assert read.json() == {
        "format": "latex",
        "ok": True,
        "read_as": "sum(g_h[i] * dpsi(z[i]) * h[t - 1] for i in range(1, t + 1))",
        "read_as_latex": r"\sum_{i=1}^{t} g_{h,i} \times \psi'\left(z_{i}\right) \times h_{t-1}",
        "error": None,
        "position": None,
        "note": None,
    }
    # No format given, detected as text, read as LaTeX: the preview says so.
    fallback = api.client.post(path, json={"expression": "h_t x_t"}, headers=headers).json()
    assert fallback["ok"] is True
    assert fallback["note"].startswith("Read as LaTeX:")
    broken = api.client.post(
        path, json={"expression": "sum(g_h[i] for i in range(1, t+1)", "format": "text"}, headers=headers
    )
    assert broken.status_code == 200
    assert broken.json()["ok"] is False
    assert broken.json()["read_as_latex"] is None
    assert "ends too early" in broken.json()["error"]
    assert (
        api.client.post(path, json={"expression": "x"}, headers=api.accounts.header("outsider")).status_code
        == 404
    )
    not_a_formula = "/api/v1/courses/demo/assignments/hw5/questions/q1_1/preview"
    assert api.client.post(not_a_formula, json={"expression": "x"}, headers=headers).status_code == 422
    assert api.client.post(path, json={"expression": "x" * 3_000}, headers=headers).status_code == 422
    assert api.executor.notified == []
    assert api.get("student", "/api/v1/courses/demo/assignments/hw5/submissions").json()["items"] == []
