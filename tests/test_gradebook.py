"""The gradebook and question statistics: which answer counts (last / best) and what it is worth,
on SQLite and PostgreSQL, through the HTTP API.

The table-driven cases seed submissions and results as rows (the verdicts and times they need are
not ones a grader can be steered to); the end-to-end cases submit and grade through the real path.
"""

from __future__ import annotations

import base64
import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from graders import Verdict
from service.grades.service import export_csv
from service.models import (
    Assignment,
    AssignmentPolicy,
    AssignmentVersion,
    Course,
    ManualGrade,
    ManualGradeKind,
    Question,
    QuestionResult,
    Role,
    Submission,
    User,
)
from tests.conftest import Api
from tests.factories import add_user

GRADEBOOK = "/api/v1/courses/demo/assignments/hw5/gradebook"
STATISTICS = "/api/v1/courses/demo/assignments/hw5/questions/{question}/statistics"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Answer:
    """One seeded answer to q3_2 (2 points, a manual question) or another question."""

    verdict: Verdict
    score: float
    minute: int
    penalty: float = 0.0
    manual: float | None = None
    override: float | None = None
    question: str = "q3_2"


@dataclass
class Seeder:
    session: Session
    users: dict[str, int] = field(default_factory=dict)

    def version(self) -> AssignmentVersion:
        statement = (
            select(AssignmentVersion)
            .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
            .join(Course, Course.id == Assignment.course_id)
            .where(Course.slug == "demo", Assignment.slug == "hw5")
            .order_by(AssignmentVersion.version.desc())
        )
        return self.session.scalars(statement).first()  # type: ignore[return-value]

    def user(self, username: str) -> int:
        return self.session.scalars(select(User.id).where(User.username == username)).one()

    def answer(self, username: str, answer: Answer) -> uuid.UUID:
        version = self.version()
        question = self.session.scalars(
            select(Question).where(
                Question.assignment_version_id == version.id, Question.key == answer.question
            )
        ).one()
        grader = self.user("ta")
        submission = Submission(
            id=uuid.uuid4(),
            assignment_version_id=version.id,
            user_id=self.user(username),
            answers={answer.question: {"text": "seeded"}},
            request_hash=uuid.uuid4().hex,
            score=answer.score,
            max_score=question.points,
            late_seconds=3600 if answer.penalty else 0,
            late_penalty=answer.penalty,
            created_at=START + timedelta(minutes=answer.minute),
        )
        self.session.add(submission)
        self.session.flush()
        self.session.add(
            QuestionResult(
                submission_id=submission.id,
                question_id=question.id,
                question_key=answer.question,
                verdict=answer.verdict,
                score=answer.score,
                max_score=question.points,
                feedback="",
                details={},
                grader_kind=question.kind,
                grader_version="1",
                reference_version="seeded",
                job_attempt=1,
            )
        )
        for kind, score in (
            (ManualGradeKind.MANUAL, answer.manual),
            (ManualGradeKind.OVERRIDE, answer.override),
        ):
            if score is not None:
                self.session.add(
                    ManualGrade(
                        submission_id=submission.id,
                        question_key=answer.question,
                        kind=kind,
                        score=score,
                        reason="seeded" if kind is ManualGradeKind.OVERRIDE else "",
                        graded_by_user_id=grader,
                    )
                )
        self.session.flush()
        return submission.id

    def counts(self, counts: str) -> None:
        assignment_id = self.version().assignment_id
        self.session.add(AssignmentPolicy(assignment_id=assignment_id, policy={"counts": counts}))
        self.session.flush()


PENDING = Verdict.PENDING_MANUAL

# (name, counts, answers oldest first, the cell: (score, raw, which answer counts, needs_grading,
# late), or None for no cell)
CASES: list[tuple[str, str, list[Answer], tuple[float | None, float | None, int, bool, bool] | None]] = [
    (
        "last: the newest counts, even when worse",
        "last",
        [Answer(Verdict.CORRECT, 2, 1), Answer(Verdict.INCORRECT, 0, 2)],
        (0.0, 0.0, 1, False, False),
    ),
    (
        "last: an invalid answer never counts",
        "last",
        [Answer(Verdict.CORRECT, 2, 1), Answer(Verdict.INVALID, 0, 2)],
        (2.0, 2.0, 0, False, False),
    ),
    (
        "last: nor does an error",
        "last",
        [Answer(Verdict.PARTIAL, 1, 1), Answer(Verdict.ERROR, 0, 2)],
        (1.0, 1.0, 0, False, False),
    ),
    (
        "last: an ungraded newest answer counts and needs grading",
        "last",
        [Answer(Verdict.CORRECT, 2, 1), Answer(PENDING, 0, 2)],
        (None, None, 1, True, False),
    ),
    (
        "last: a manual grade gives a pending answer its raw score",
        "last",
        [Answer(PENDING, 0, 1, manual=1.5)],
        (1.5, 1.5, 0, False, False),
    ),
    (
        "last: an override wins over the automatic score",
        "last",
        [Answer(Verdict.INCORRECT, 0, 1, override=1.25)],
        (1.25, 1.25, 0, False, False),
    ),
    (
        "last: an overridden invalid answer counts (a person graded it)",
        "last",
        [Answer(Verdict.CORRECT, 2, 1), Answer(Verdict.INVALID, 0, 2, override=0.5)],
        (0.5, 0.5, 1, False, False),
    ),
    (
        "last: the late penalty takes its fraction, rounded to 6 places",
        "last",
        [Answer(Verdict.CORRECT, 2, 1, penalty=1 / 3)],
        (1.333333, 2.0, 0, False, True),
    ),
    (
        "best: the highest counts",
        "best",
        [Answer(Verdict.CORRECT, 2, 1), Answer(Verdict.PARTIAL, 1, 2)],
        (2.0, 2.0, 0, False, False),
    ),
    (
        "best: compared after the penalty",
        "best",
        [Answer(Verdict.CORRECT, 2, 1, penalty=0.6), Answer(Verdict.PARTIAL, 1, 2)],
        (1.0, 1.0, 1, False, False),
    ),
    (
        "best: a tie goes to the newest",
        "best",
        [Answer(Verdict.PARTIAL, 1, 1), Answer(Verdict.PARTIAL, 1, 2)],
        (1.0, 1.0, 1, False, False),
    ),
    (
        "best: an ungraded answer ranks last but the cell needs grading",
        "best",
        [Answer(Verdict.PARTIAL, 1, 1), Answer(PENDING, 0, 2)],
        (1.0, 1.0, 0, True, False),
    ),
    (
        "best: a manual grade competes like any score",
        "best",
        [Answer(Verdict.PARTIAL, 1, 1), Answer(PENDING, 0, 2, manual=2)],
        (2.0, 2.0, 1, False, False),
    ),
    (
        "best: invalid and error answers never count",
        "best",
        [Answer(Verdict.PARTIAL, 0.5, 1), Answer(Verdict.INVALID, 0, 2), Answer(Verdict.ERROR, 0, 3)],
        (0.5, 0.5, 0, False, False),
    ),
    ("only invalid answers: no cell", "last", [Answer(Verdict.INVALID, 0, 1)], None),
]


@pytest.mark.parametrize(("name", "counts", "answers", "expected"), CASES, ids=[case[0] for case in CASES])
def test_the_counted_answer(
    api: Api,
    session_factory: sessionmaker[Session],
    name: str,
    counts: str,
    answers: list[Answer],
    expected: tuple[float | None, float | None, int, bool, bool] | None,
) -> None:
    with session_factory() as session:
        seeder = Seeder(session)
        if counts != "last":
            seeder.counts(counts)
        ids = [seeder.answer("student", answer) for answer in answers]
        session.commit()
    book = api.get("ta", GRADEBOOK).json()
    assert book["counts"] == counts
    row = {r["student"]: r for r in book["rows"]}["student"]
    if expected is None:
        assert row["questions"] == {}
        assert row["total"] == 0
        return
    score, raw, which, needs_grading, late = expected
    cell = row["questions"]["q3_2"]
    assert (cell["score"], cell["raw"], cell["submission_id"], cell["needs_grading"], cell["late"]) == (
        score,
        raw,
        str(ids[which]),
        needs_grading,
        late,
    ), name
    counted = answers[which]
    assert cell["auto"] == counted.score
    assert cell["manual"] == counted.manual
    assert cell["override"] == counted.override
    assert cell["verdict"] == _shown_verdict(counted).value
    assert row["total"] == (score or 0.0)


def _shown_verdict(answer: Answer) -> Verdict:
    """A person's grade decides the verdict, as in the submission view (q3_2 is worth 2 points)."""
    by_person = answer.manual if answer.manual is not None else answer.override
    if by_person is None:
        return answer.verdict
    return Verdict.CORRECT if by_person >= 2 else Verdict.INCORRECT if by_person <= 0 else Verdict.PARTIAL


def test_totals_sum_the_counted_cells_and_every_student_has_a_row(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        seeder = Seeder(session)
        seeder.answer("student", Answer(Verdict.CORRECT, 1, 1, question="q1_1"))
        seeder.answer("student", Answer(Verdict.PARTIAL, 1, 2, penalty=0.5, question="q2_1"))
        seeder.answer("student", Answer(PENDING, 0, 3))
        session.commit()
    book = api.get("instructor", GRADEBOOK).json()
    # Staff and other courses' students are not rows; a student who never submitted is.
    assert [row["student"] for row in book["rows"]] == ["student", "student2"]
    student, student2 = book["rows"]
    assert student["total"] == 1.5
    assert student["max_score"] == book["max_score"] == 27
    assert set(student["questions"]) == {"q1_1", "q2_1", "q3_2"}
    assert student2 == {"student": "student2", "total": 0.0, "max_score": 27.0, "questions": {}}
    assert [column["key"] for column in book["questions"]][:3] == ["q1_1", "q1_2", "q1_3"]
    assert book["next"] is None


def test_filters_keep_the_students_with_a_matching_cell(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        add_user(session, "student3", "demo", Role.STUDENT)
        seeder = Seeder(session)
        seeder.answer("student", Answer(PENDING, 0, 1))
        seeder.answer("student", Answer(Verdict.CORRECT, 1, 2, penalty=0.1, question="q1_1"))
        seeder.answer("student2", Answer(Verdict.PARTIAL, 1, 3))
        seeder.answer("student2", Answer(Verdict.INCORRECT, 0, 4, question="q1_1"))
        session.commit()

    def students(query: str) -> list[str]:
        response = api.get("ta", f"{GRADEBOOK}?{query}")
        assert response.status_code == 200, response.text
        return [row["student"] for row in response.json()["rows"]]

    assert students("") == ["student", "student2", "student3"]
    assert students("needs_grading=true") == ["student"]
    assert students("needs_grading=false") == ["student", "student2"]
    assert students("late=true") == ["student"]
    assert students("late=true&question=q3_2") == []
    assert students("verdict=incorrect") == ["student2"]
    assert students("verdict=partial&question=q3_2") == ["student2"]
    assert students("verdict=partial&question=q1_1") == []
    # A question alone narrows the columns, not the rows.
    narrowed = api.get("ta", f"{GRADEBOOK}?question=q1_1").json()
    assert [column["key"] for column in narrowed["questions"]] == ["q1_1"]
    assert [set(row["questions"]) for row in narrowed["rows"]] == [{"q1_1"}, {"q1_1"}, set()]


def _in_order(api: Api, query: str, limit: int) -> list[str]:
    return [student for page in _all_pages(api, query, limit) for student in page]


def _all_pages(api: Api, query: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after = ""
    while True:
        response = api.get("ta", f"{GRADEBOOK}?{query}&limit={limit}{after}")
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([row["student"] for row in body["rows"]])
        if body["next"] is None:
            return pages
        after = f"&after={body['next']}"


@pytest.fixture
def five_students(api: Api, session_factory: sessionmaker[Session]) -> Api:
    """Students s1..s5 (and the fixture's student, student2) with q1_1 scores that tie."""
    with session_factory() as session:
        seeder = Seeder(session)
        for n, score in enumerate([0.5, 1.0, 0.5, 0.0, 1.0], start=1):
            add_user(session, f"s{n}", "demo", Role.STUDENT)
            seeder.answer(f"s{n}", Answer(Verdict.PARTIAL, score, n, question="q1_1"))
        seeder.answer("student", Answer(PENDING, 0, 9))
        session.commit()
    return api


def test_sorts_and_keyset_pages(five_students: Api) -> None:
    api = five_students
    everyone = ["s1", "s2", "s3", "s4", "s5", "student", "student2"]
    assert _all_pages(api, "sort=student", 3) == [everyone[:3], everyone[3:6], everyone[6:]]
    assert _in_order(api, "sort=student&order=desc", 2) == everyone[::-1]
    # Ties broken by username; descending by total keeps the username ascending within a tie.
    assert _in_order(api, "sort=total&order=desc", 2) == ["s2", "s5", "s1", "s3", "s4", "student", "student2"]
    assert _in_order(api, "sort=total", 4) == ["s4", "student", "student2", "s1", "s3", "s2", "s5"]
    # By a question's score: no answer (or one waiting for a person) last, whichever the direction.
    assert _in_order(api, "sort=q1_1&order=desc", 3) == ["s2", "s5", "s1", "s3", "s4", "student", "student2"]
    assert _in_order(api, "sort=q1_1", 1) == ["s4", "s1", "s3", "s2", "s5", "student", "student2"]


def test_a_page_boundary_is_stable_under_concurrent_inserts(
    five_students: Api, session_factory: sessionmaker[Session]
) -> None:
    api = five_students
    first = api.get("ta", f"{GRADEBOOK}?sort=student&limit=3").json()
    assert [row["student"] for row in first["rows"]] == ["s1", "s2", "s3"]
    # A student enrolled before the cursor's position and a new answer in the middle of the page
    # shift nothing: the next page starts after s3, by key, not by offset.
    with session_factory() as session:
        add_user(session, "a_newcomer", "demo", Role.STUDENT)
        Seeder(session).answer("s2", Answer(Verdict.CORRECT, 1, 20, question="q1_1"))
        session.commit()
    second = api.get("ta", f"{GRADEBOOK}?sort=student&limit=3&after={first['next']}").json()
    assert [row["student"] for row in second["rows"]] == ["s4", "s5", "student"]


@pytest.mark.parametrize(
    "query",
    [
        "sort=nope",
        "question=nope",
        "after=!!!",
        "sort=total&after=" + base64.urlsafe_b64encode(b'["total",false,[0,NaN,"x"]]').decode(),
        "sort=total&after=" + base64.urlsafe_b64encode(b'["total",false,[0,1e999,"x"]]').decode(),
        "sort=total&after=" + base64.urlsafe_b64encode(b'["total",false,[true,1,"x"]]').decode(),
        "sort=total&after=" + base64.urlsafe_b64encode(b'["total",false,[0,"1","x"]]').decode(),
        "after=" + base64.urlsafe_b64encode(b'["student",false,["' + b"x" * 65 + b'"]]').decode(),
        "after=" + base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        "after=" + base64.urlsafe_b64encode(b'["student",false,["a\\u0000b"]]').decode(),
        "sort=total&after=" + base64.urlsafe_b64encode(b'["total",false,[0,1,"a\\u0000"]]').decode(),
        "question=%00",
        "after=" + "A" * 600,
        "limit=0",
        "limit=501",
        "verdict=great",
        "order=sideways",
        "format=xml",
    ],
)
def test_hostile_queries_are_422(api: Api, query: str) -> None:
    response = api.get("ta", f"{GRADEBOOK}?{query}")
    assert response.status_code == 422, (query, response.text)
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_a_cursor_of_another_sort_order_is_refused(five_students: Api) -> None:
    api = five_students
    cursor = api.get("ta", f"{GRADEBOOK}?sort=total&limit=2").json()["next"]
    response = api.get("ta", f"{GRADEBOOK}?sort=student&limit=2&after={cursor}")
    assert response.status_code == 422
    assert "another sort order" in response.json()["error"]["message"]


def test_csv_is_the_same_query_as_the_page(
    five_students: Api, session_factory: sessionmaker[Session]
) -> None:
    api = five_students
    with session_factory() as session:
        add_user(session, "=HYPERLINK(1)", "demo", Role.STUDENT)
        session.commit()
    response = api.get("ta", f"{GRADEBOOK}?format=csv&sort=total&order=desc&limit=1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:4] == ["student", "total", "max_score", "q1_1"]
    # The whole gradebook (pagination does not apply), in the page's order and with its numbers.
    assert [row[0] for row in rows[1:]] == [
        "s2",
        "s5",
        "s1",
        "s3",
        "'=HYPERLINK(1)",
        "s4",
        "student",
        "student2",
    ]
    by_student = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert by_student["s1"]["q1_1"] == "0.5"
    assert by_student["student"]["q3_2"] == "pending"
    assert by_student["student2"]["q1_1"] == ""
    with session_factory() as session:
        exported = export_csv(session, "demo", "hw5")
    assert sorted(exported.splitlines()[1:]) == sorted(response.text.splitlines()[1:])


def test_question_statistics_over_real_grading(api: Api, session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        api.accounts.tokens["student3"] = add_user(session, "student3", "demo", Role.STUDENT)
        session.commit()
    for who, answer in (
        ("student", "y[t] - yhat[t]"),  # the sign is wrong
        ("student2", "y[t] - yhat[t]"),
        ("student3", "yhat[t] - y[t]"),  # right
    ):
        assert api.submit(who, {"q2_1": {"expression": answer}}).status_code == 202
    api.grade_pending()
    response = api.get("ta", STATISTICS.format(question="q2_1") + "?bins=4")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["kind"], stats["points"], stats["count"]) == ("expression", 2.0, 3)
    assert stats["verdicts"] == {"correct": 1, "incorrect": 2}
    assert (stats["mean"], stats["median"]) == (pytest.approx(2 / 3), 0.0)
    assert [(b["low"], b["high"], b["count"]) for b in stats["histogram"]] == [
        (0.0, 0.5, 2),
        (0.5, 1.0, 0),
        (1.0, 1.5, 0),
        (1.5, 2.0, 1),
    ]
    assert stats["diagnoses"] == {"sign": 2}
    assert [(m["diagnosis"], m["count"]) for m in stats["mistakes"]] == [("sign", 2)]
    assert stats["needs_grading"] == 0


def test_statistics_count_what_needs_grading(api: Api, session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        seeder = Seeder(session)
        seeder.answer("student", Answer(PENDING, 0, 1))
        seeder.answer("student2", Answer(PENDING, 0, 2, manual=2))
        session.commit()
    stats = api.get("ta", STATISTICS.format(question="q3_2")).json()
    assert (stats["count"], stats["needs_grading"], stats["mean"], stats["median"]) == (2, 1, 2.0, 2.0)
    assert stats["histogram"][-1]["count"] == 1
    assert sum(b["count"] for b in stats["histogram"]) == 1
    assert stats["mistakes"] == []
    assert api.get("ta", STATISTICS.format(question="nope")).status_code == 404


def test_the_gradebook_of_graded_submissions(api: Api, session_factory: sessionmaker[Session]) -> None:
    """Through the real path: submitted and graded over HTTP, then the policy switched to best."""
    first = api.submit("student", {"q1_1": {"choices": [2, 3]}, "q3_2": {"text": "Vanishing gradients."}})
    second = api.submit("student", {"q1_1": {"choices": [1]}})
    assert (first.status_code, second.status_code) == (202, 202)
    api.grade_pending()
    assert api.get("ta", first.headers["location"]).json()["questions"]["q1_1"]["verdict"] == "correct"

    def cells() -> dict[str, Any]:
        book = api.get("ta", GRADEBOOK).json()
        return {row["student"]: row for row in book["rows"]}["student"]

    row = cells()
    assert row["questions"]["q1_1"] | {"submission_id": None} == {
        "score": 0.0,
        "raw": 0.0,
        "auto": 0.0,
        "manual": None,
        "override": None,
        "penalty": 0.0,
        "late": False,
        "verdict": "incorrect",
        "needs_grading": False,
        "submission_id": None,
    }
    assert row["questions"]["q1_1"]["submission_id"] == second.json()["id"]
    assert row["questions"]["q3_2"]["needs_grading"] is True
    assert row["questions"]["q3_2"]["score"] is None
    assert row["total"] == 0.0

    with session_factory() as session:
        Seeder(session).counts("best")
        session.commit()
    row = cells()
    assert row["questions"]["q1_1"]["submission_id"] == first.json()["id"]
    assert row["total"] == 1.0
