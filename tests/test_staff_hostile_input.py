"""Issue 11's staff routes against hostile input and held grades, on SQLite and PostgreSQL: forged
cursors, NUL characters in paths and query strings, out-of-range numbers are 4xx (never a 500),
and a `hold_grades` that a newer version of the material brought hides every older submission's
grades too."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.errors import UnprocessableAnswer
from service.marking.service import parse_if_match
from tests.conftest import HW5_FOLDER, Api
from tests.test_api_marking import Q3_2, grade_path, put_grade, submit_graded

HW5 = "/api/v1/courses/demo/assignments/hw5"


def test_a_cursor_with_an_integer_past_floats_range_is_422(api: Api) -> None:
    forged = b'["total",false,[0,1' + b"0" * 309 + b',"x"]]'
    cursor = base64.urlsafe_b64encode(forged).decode().rstrip("=")
    assert len(cursor) <= 512
    response = api.get("ta", f"{HW5}/gradebook?sort=total&after={cursor}")
    assert response.status_code == 422, response.text


def test_deleting_a_grade_with_a_nul_in_the_reason_is_422(api: Api) -> None:
    submission = submit_graded(api, "student", {"q3_2": {"text": Q3_2}})
    assert put_grade(api, "ta", submission, "q3_2", {"score": 1.0}).status_code == 200
    response = api.client.delete(
        grade_path(submission, "q3_2"), params={"reason": "typo\x00"}, headers=api.accounts.header("ta")
    )
    assert response.status_code == 422, response.text
    # The grade is still there.
    assert api.get("ta", f"/api/v1/submissions/{submission}").json()["questions"]["q3_2"]["score"] == 1.0


def test_a_grade_version_past_the_column_is_422(api: Api) -> None:
    submission = submit_graded(api, "student", {"q3_2": {"text": Q3_2}})
    assert put_grade(api, "ta", submission, "q3_2", {"score": 1.0}).status_code == 200
    for version in (2**31, 10**30):
        response = put_grade(api, "ta", submission, "q3_2", {"score": 2.0, "version": version})
        assert response.status_code == 422, (version, response.text)


def _nul_paths(submission: str) -> list[tuple[str, str, dict[str, Any]]]:
    grade = f"/api/v1/submissions/{submission}/questions/q%00/grade"
    return [
        ("PUT", grade, {"json": {"score": 1.0, "reason": "r"}}),
        ("DELETE", grade, {"params": {"reason": "r"}}),
        ("GET", f"{HW5}/students/stu%00dent", {}),
        ("PUT", f"{HW5}/extensions/stu%00dent", {"json": {"due_at": "2030-01-01T00:00:00Z"}}),
        ("DELETE", f"{HW5}/extensions/stu%00dent", {}),
        ("GET", "/api/v1/courses/de%00mo/assignments/hw5/gradebook", {}),
        ("GET", "/api/v1/courses/de%00mo/assignments/hw5/policy", {}),
        ("GET", "/api/v1/courses/de%00mo/audit", {}),
        ("GET", "/api/v1/courses/demo/assignments/hw%005/regrades", {}),
        ("GET", f"{HW5}/questions/q%00/manual-queue", {}),
        ("GET", f"{HW5}/questions/q%00/statistics", {}),
    ]


def test_a_nul_in_a_path_is_404_not_500(api: Api) -> None:
    submission = submit_graded(api, "student", {"q3_2": {"text": Q3_2}})
    for method, path, extra in _nul_paths(submission):
        response = api.client.request(method, path, headers=api.accounts.header("ta"), **extra)
        assert response.status_code == 404, (method, path, response.text)
        assert set(response.json()["error"]) == {"code", "message", "details"}


def test_hold_grades_of_the_newest_material_hides_older_submissions(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    submission = submit_graded(api, "student", {"q1_1": {"choices": [2, 3]}, "q3_2": {"text": Q3_2}})
    assert put_grade(api, "ta", submission, "q3_2", {"score": 1.5, "feedback": "Half."}).status_code == 200
    assert api.get("student", f"/api/v1/submissions/{submission}").json()["score"] == 2.5

    # Version 2 of hw5: the same questions, and grades held until a release.
    folder = tmp_path / "hw5-v2"
    shutil.copytree(HW5_FOLDER, folder)
    toml = (folder / "assignment.toml").read_text()
    (folder / "assignment.toml").write_text(
        toml.replace("[shared.bptt]", "[policy]\nhold_grades = true\n\n[shared.bptt]", 1)
    )
    with session_factory() as session:
        assert load_assignment(session, "demo", read_material(folder)).version == 2
        session.commit()

    assert api.get("student", f"{HW5}/policy").json()["grades_visible_to_students"] is False
    view = api.get("student", f"/api/v1/submissions/{submission}").json()
    assert (view["grades_held"], view["score"], view["effective_score"], view["questions"]) == (
        True,
        None,
        None,
        {},
    )
    listed = api.get("student", f"{HW5}/submissions").json()["items"]
    assert [(item["score"], item["grades_held"]) for item in listed] == [(None, True)]
    assert api.get("student", f"/api/v1/submissions/{submission}/results.json").status_code == 403
    history = api.get("student", f"{HW5}/students/student").json()
    assert history["submissions"][0]["score"] is None
    # Staff see everything; after the release, so does the student.
    assert api.get("ta", f"/api/v1/submissions/{submission}").json()["score"] == 2.5
    release = api.client.post(f"{HW5}/release", headers=api.accounts.header("ta"))
    assert release.status_code == 200, release.text
    assert api.get("student", f"/api/v1/submissions/{submission}").json()["score"] == 2.5
    assert api.get("student", f"/api/v1/submissions/{submission}/results.json").status_code == 200


@pytest.mark.parametrize("header", ['"\u00b2"', "\u00b9", 'W/"1\u00b3"', "\u0663"])
def test_an_if_match_of_non_ascii_digits_is_refused(header: str) -> None:
    # A server decodes header bytes as latin-1: b"\xb2" is "²", a digit to str.isdigit() that int()
    # refuses (a 500); Arabic-Indic digits int() would read. Only ASCII digits name a version.
    with pytest.raises(UnprocessableAnswer):
        parse_if_match(header)


def test_a_submissions_offset_past_a_64_bit_integer_is_422(api: Api) -> None:
    for offset in (2**63, 10**30):
        response = api.get("student", f"{HW5}/submissions?offset={offset}")
        assert response.status_code == 422, (offset, response.text)


def test_a_students_history_names_students_only(api: Api) -> None:
    assert api.client.post(
        f"{HW5}/submissions",
        json={"answers": {"q1_1": {"choices": [2, 3]}}},
        headers=api.accounts.header("ta"),
    ).status_code in (201, 202)
    assert api.get("ta", f"{HW5}/students/student").status_code == 200
    # The route is a student's history: a TA's or an instructor's name is no student of the course.
    assert api.get("instructor", f"{HW5}/students/ta").status_code == 404
    assert api.get("ta", f"{HW5}/students/instructor").status_code == 404
