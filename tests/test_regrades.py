"""Regrades: a changed reference loaded into the course, a TA regrades one question, and only the
scores that should change change; the old results stay, people's grades survive (unless the TA
says otherwise), and the report lists exactly what changed. On SQLite and PostgreSQL, through
the real grading loop; and once through the local executor's worker processes."""

from __future__ import annotations

import csv
import io
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.grades.service import export_csv
from service.main import create_app
from service.migrations import upgrade_database
from service.models import (
    GradeAuditEntry,
    GradingJob,
    ManualGrade,
    ManualGradeKind,
    QuestionResult,
    Role,
    User,
)
from service.worker.local import LocalExecutor
from tests.conftest import HW5_FOLDER, Api
from tests.factories import add_user, seed_courses

REGRADES = "/api/v1/courses/demo/assignments/hw5/regrades"
# q3_1's reference output is [6, 1, 2]; its tolerance is atol 1e-6.
RIGHT = {"q3_1": {"value": [6, 1, 2]}}
OFF_BY_HALF = {"q3_1": {"value": [6, 1, 2.5]}}
Q3_1_TOLERANCE = "[6, 1, 2]] }\nrtol = 0.0\natol = 1e-6"


def load_hw5_with_tolerance(session_factory: sessionmaker[Session], folder: Path, atol: str) -> None:
    """A new version of hw5 in course demo: the same material with q3_1's atol changed."""
    shutil.copytree(HW5_FOLDER, folder)
    toml = (folder / "assignment.toml").read_text()
    assert toml.count(Q3_1_TOLERANCE) == 1
    (folder / "assignment.toml").write_text(
        toml.replace(Q3_1_TOLERANCE, f"[6, 1, 2]] }}\nrtol = 0.0\natol = {atol}")
    )
    with session_factory() as session:
        assert load_assignment(session, "demo", read_material(folder)).version == 2
        session.commit()


def submit(api: Api, who: str, answers: dict[str, Any]) -> str:
    response = api.submit(who, answers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def give_manual_grade(
    session_factory: sessionmaker[Session],
    submission: str,
    question: str,
    score: float,
    kind: ManualGradeKind,
) -> None:
    """A TA's grade as the marking routes store it (seeded: this slice does not own those routes)."""
    with session_factory() as session:
        ta = session.scalars(select(User.id).where(User.username == "ta")).one()
        session.add(
            ManualGrade(
                submission_id=uuid.UUID(submission),
                question_key=question,
                kind=kind,
                score=score,
                reason="partly right" if kind is ManualGradeKind.OVERRIDE else "",
                graded_by_user_id=ta,
            )
        )
        session.commit()


def results(
    session_factory: sessionmaker[Session], submission: str, question: str
) -> list[tuple[int, float, bool]]:
    with session_factory() as session:
        rows = session.execute(
            select(QuestionResult.revision, QuestionResult.score, QuestionResult.is_current)
            .where(
                QuestionResult.submission_id == uuid.UUID(submission), QuestionResult.question_key == question
            )
            .order_by(QuestionResult.revision)
        ).all()
    return [(revision, score, current) for revision, score, current in rows]


def audit(
    session_factory: sessionmaker[Session], action: str
) -> list[tuple[str, str, float | None, float | None]]:
    with session_factory() as session:
        rows = session.execute(
            select(
                GradeAuditEntry.submission_id,
                GradeAuditEntry.question_key,
                GradeAuditEntry.old_score,
                GradeAuditEntry.new_score,
                User.username,
            )
            .join(User, User.id == GradeAuditEntry.actor_user_id)
            .where(GradeAuditEntry.action == action)
            .order_by(GradeAuditEntry.id)
        ).all()
    assert {row[4] for row in rows} <= {"ta"}
    return [(str(row[0]), row[1], row[2], row[3]) for row in rows]


@pytest.fixture
def graded_class(api: Api, session_factory: sessionmaker[Session], tmp_path: Path) -> dict[str, str]:
    """Three students' hw5, graded against version 1, with a TA's grade and an override; then a
    version 2 of hw5 whose q3_1 accepts an answer 0.5 off."""
    with session_factory() as session:
        api.accounts.tokens["student3"] = add_user(session, "student3", "demo", Role.STUDENT)
        session.commit()
    submissions = {
        "student": submit(api, "student", OFF_BY_HALF | {"q1_2": {"choices": [3]}}),
        "student2": submit(api, "student2", RIGHT | {"q3_2": {"text": "Not differentiable."}}),
        "student3": submit(api, "student3", OFF_BY_HALF),
    }
    assert api.grade_pending() == 3
    give_manual_grade(session_factory, submissions["student2"], "q3_2", 1.5, ManualGradeKind.MANUAL)
    give_manual_grade(session_factory, submissions["student3"], "q3_1", 0.5, ManualGradeKind.OVERRIDE)
    load_hw5_with_tolerance(session_factory, tmp_path / "hw5-v2", "0.6")
    return submissions


def start(api: Api, body: dict[str, Any], who: str = "ta") -> dict[str, Any]:
    response = api.client.post(REGRADES, json=body, headers=api.accounts.header(who))
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == response.json()["url"]
    return dict(response.json())


def test_a_regrade_of_one_question_changes_only_what_the_new_tolerance_changes(
    api: Api, session_factory: sessionmaker[Session], graded_class: dict[str, str]
) -> None:
    started = start(api, {"question": "q3_1"})
    assert (started["status"], started["progress"], started["changes"]) == (
        "running",
        {"done": 0, "total": 3, "errors": 0},
        None,
    )
    assert (started["assignment_version"], started["requested_by"], started["keep_manual"]) == (2, "ta", True)
    assert len(api.executor.notified) == 6  # three submissions, then the regrade's three jobs
    running = api.get("ta", started["url"]).json()
    assert (running["status"], running["progress"]["done"], running["changes"]) == ("running", 0, None)

    assert api.grade_pending() == 3
    report = api.get("ta", started["url"]).json()
    assert report["status"] == "done"
    assert report["progress"] == {"done": 3, "total": 3, "errors": 0}
    assert report["finished_at"] is not None
    # Exactly the two answers 0.5 off changed; student3's override is kept and still governs.
    assert [
        (
            c["student"],
            c["question"],
            c["old_score"],
            c["new_score"],
            c["old_verdict"],
            c["new_verdict"],
            c["manual_score"],
        )
        for c in report["changes"]
    ] == [
        ("student", "q3_1", 0.0, 2.0, "incorrect", "correct", None),
        ("student3", "q3_1", 0.0, 2.0, "incorrect", "correct", 0.5),
    ]

    # Nothing overwritten: revision 1 is still there, no longer current; other questions untouched.
    assert results(session_factory, graded_class["student"], "q3_1") == [(1, 0.0, False), (2, 2.0, True)]
    assert results(session_factory, graded_class["student2"], "q3_1") == [(1, 2.0, False), (2, 2.0, True)]
    assert results(session_factory, graded_class["student"], "q1_2") == [(1, 1.0, True)]
    assert results(session_factory, graded_class["student2"], "q3_2") == [(1, 0.0, True)]

    # The totals: the new automatic score, unless a person's grade governs the answer.
    views = {who: api.get("ta", f"/api/v1/submissions/{sid}").json() for who, sid in graded_class.items()}
    assert {who: (view["score"], view["status"]) for who, view in views.items()} == {
        "student": (3.0, "graded"),
        "student2": (3.5, "graded"),  # 2 + the TA's 1.5 for q3_2
        "student3": (0.5, "graded"),  # the override, not the new 2
    }
    assert views["student"]["questions"]["q3_1"]["verdict"] == "correct"
    assert views["student"]["max_score"] == 27.0  # version 2 has the same points

    # The manual grades survived; each changed automatic score is audited, by the TA who started it.
    with session_factory() as session:
        assert session.scalar(select(ManualGrade.score).where(ManualGrade.question_key == "q3_2")) == 1.5
        assert session.scalar(select(ManualGrade.score).where(ManualGrade.question_key == "q3_1")) == 0.5
    assert audit(session_factory, "regrade") == [
        (graded_class["student"], "q3_1", 0.0, 2.0),
        (graded_class["student3"], "q3_1", 0.0, 2.0),
    ]
    # The course's audit log lists them too, newest first, by the TA who started the regrade.
    logged = api.get("instructor", "/api/v1/courses/demo/audit").json()["items"]
    assert [(e["student"], e["action"], e["actor"], e["old_score"], e["new_score"]) for e in logged][:2] == [
        ("student3", "regrade", "ta", 0.0, 2.0),
        ("student", "regrade", "ta", 0.0, 2.0),
    ]

    # A submission is still one row in the list and keeps its first job's status.
    listed = api.get("ta", "/api/v1/courses/demo/assignments/hw5/submissions").json()["items"]
    assert sorted(item["student"] for item in listed) == ["student", "student2", "student3"]
    # The export too: one row per student, the current results.
    with session_factory() as session:
        exported = {
            row["student"]: row for row in csv.DictReader(io.StringIO(export_csv(session, "demo", "hw5")))
        }
    assert sorted(exported) == ["student", "student2", "student3"]
    assert (exported["student"]["total"], exported["student"]["q3_1"]) == ("3", "2")
    regrades = api.get("instructor", REGRADES).json()["items"]
    assert [(item["id"], item["status"], item["changes"]) for item in regrades] == [
        (started["id"], "done", None)
    ]


def test_keep_manual_false_clears_the_regraded_questions_grades_with_an_audit_entry(
    api: Api, session_factory: sessionmaker[Session], graded_class: dict[str, str]
) -> None:
    started = start(api, {"question": "q3_1", "students": ["student3", "student2"], "keep_manual": False})
    assert started["students"] == ["student2", "student3"]
    assert started["progress"]["total"] == 2
    # Cleared at once, and audited: the override of q3_1; student2's grade of q3_2 is another question.
    assert audit(session_factory, "cleared_by_regrade") == [(graded_class["student3"], "q3_1", 0.5, None)]
    assert api.get("ta", f"/api/v1/submissions/{graded_class['student3']}").json()["score"] == 0.0

    assert api.grade_pending() == 2
    report = api.get("ta", started["url"]).json()
    assert [(c["student"], c["new_score"], c["manual_score"]) for c in report["changes"]] == [
        ("student3", 2.0, None)
    ]
    assert api.get("ta", f"/api/v1/submissions/{graded_class['student3']}").json()["score"] == 2.0
    with session_factory() as session:
        assert session.scalars(select(ManualGrade.question_key)).all() == ["q3_2"]
    # student was not selected: still graded against version 1.
    assert results(session_factory, graded_class["student"], "q3_1") == [(1, 0.0, True)]


def test_a_regrade_racing_the_first_grading_leaves_the_newest_revision_current(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The regrade's job may be stored before the submission's first one: revision order, not
    arrival order, decides which result is current."""
    submission = submit(api, "student", OFF_BY_HALF)
    load_hw5_with_tolerance(session_factory, tmp_path / "hw5-v2", "0.6")
    started = start(api, {})
    with session_factory() as session:
        regrade_job = session.scalars(select(GradingJob.id).where(GradingJob.revision == 2)).one()
    assert api.runner.run_job(regrade_job)  # revision 2 lands first ...
    assert api.grade_pending() == 1  # ... then revision 1
    assert results(session_factory, submission, "q3_1") == [(1, 0.0, False), (2, 2.0, True)]
    assert api.get("ta", f"/api/v1/submissions/{submission}").json()["score"] == 2.0
    report = api.get("ta", started["url"]).json()
    assert [(c["old_score"], c["new_score"]) for c in report["changes"]] == [(0.0, 2.0)]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"question": "q9"}, 422, "invalid_answer"),
        ({"students": ["student", "ta", "nobody"]}, 422, "invalid_answer"),
        ({"students": []}, 422, "invalid_request"),
        ({"students": ["x" * 65]}, 422, "invalid_request"),
        ({"keep_manual": "perhaps"}, 422, "invalid_request"),
        ({"question": "q3_1", "extra": 1}, 422, "invalid_request"),
    ],
)
def test_a_bad_regrade_request_is_a_clear_4xx(api: Api, body: dict[str, Any], status: int, code: str) -> None:
    response = api.client.post(REGRADES, json=body, headers=api.accounts.header("ta"))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if body.get("students") == ["student", "ta", "nobody"]:
        assert response.json()["error"]["details"] == {"unknown_students": ["nobody", "ta"]}


def test_a_regrade_with_nothing_to_grade_is_done_at_once(api: Api) -> None:
    submit(api, "student", RIGHT)
    api.grade_pending()
    started = start(api, {"question": "q1_1"})  # nobody answered q1_1
    assert (started["status"], started["progress"]) == ("done", {"done": 0, "total": 0, "errors": 0})
    assert api.get("ta", started["url"]).json()["changes"] == []


def test_an_unknown_regrade_is_404(api: Api) -> None:
    assert api.get("ta", f"/api/v1/regrades/{uuid.uuid4()}").status_code == 404


def wait_for_done(client: TestClient, url: str, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(url, headers=headers).json()
        if body.get("status") in ("done", "graded"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{url} not done after {timeout} s")


def test_a_regrade_runs_on_the_local_executors_worker_processes(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", poll_seconds=0.2, local_workers=1)
    engine = make_engine(settings)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        tokens = seed_courses(session, settings, tmp_path).tokens
    student = {"Authorization": f"Bearer {tokens['student']}"}
    ta = {"Authorization": f"Bearer {tokens['ta']}"}
    try:
        with TestClient(create_app(settings, executor=LocalExecutor(settings, 1))) as client:
            created = client.post(
                "/api/v1/courses/demo/assignments/hw5/submissions",
                json={"answers": OFF_BY_HALF},
                headers=student,
            )
            assert created.status_code == 202
            url = created.headers["Location"]
            assert wait_for_done(client, url, ta, 60)["score"] == 0.0
            load_hw5_with_tolerance(factory, tmp_path / "hw5-v2", "0.6")
            started = client.post(REGRADES, json={"question": "q3_1"}, headers=ta)
            assert started.status_code == 202
            report = wait_for_done(client, started.headers["Location"], ta, 60)
            assert [(c["student"], c["old_score"], c["new_score"]) for c in report["changes"]] == [
                ("student", 0.0, 2.0)
            ]
            assert client.get(url, headers=ta).json()["score"] == 2.0
    finally:
        engine.dispose()
