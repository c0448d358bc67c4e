"""The gradebook's SQL: which answer counts per student and question, and what it is worth.

The rules are docs/grading-policy.md's; here they are one window-function statement that runs the
same on SQLite and PostgreSQL, so a page of 1,000 students x 20 questions is one round trip and no
Python loop over answers:

    answers  every current result of the assignment's submissions (all versions) with its manual
             grade: raw, effective, countable
    ranked   ROW_NUMBER() per (student, question) in the policy's order (last / best), and whether
             any of the student's countable answers to it still needs a person
    counted  rank 1: the answer that counts
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Numeric,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
)
from sqlalchemy.orm import Session

from graders import Verdict
from service.models import (
    AssignmentVersion,
    Enrollment,
    ManualGrade,
    ManualGradeKind,
    QuestionResult,
    Role,
    Submission,
    User,
)

Counts = Literal["last", "best"]
SortKey = tuple[int, float, str] | tuple[str]

# Answers that used no attempt and never count, unless a person graded them anyway.
_UNCOUNTABLE = (Verdict.INVALID, Verdict.ERROR)


def _round6(value: ColumnElement[Any]) -> ColumnElement[float]:
    # PostgreSQL rounds only numeric to n places (round(double precision, int) does not exist).
    return cast(func.round(cast(value, Numeric), 6), Float)


@dataclass(frozen=True, slots=True)
class CellFilter:
    """Which counted cells a gradebook row must have one of (all given conditions in one cell)."""

    questions: Sequence[str]
    verdict: Verdict | None = None
    late: bool | None = None
    needs_grading: bool | None = None

    @property
    def selects_rows(self) -> bool:
        return self.verdict is not None or self.late is not None or self.needs_grading is not None


def _verdict(grade: type[ManualGrade]) -> ColumnElement[str]:
    """The answer's verdict as the submission view shows it: a person's grade decides it (correct at
    full points, incorrect at 0, partial between), else the grader's. As a plain string: the Enum's
    result processing costs more than the rest of a row."""
    by_person = case(
        (grade.score >= QuestionResult.max_score, Verdict.CORRECT.value),
        (grade.score <= 0, Verdict.INCORRECT.value),
        else_=Verdict.PARTIAL.value,
    )
    return case((grade.id.is_not(None), by_person), else_=type_coerce(QuestionResult.verdict, String))


def counted_cells(
    assignment_id: int,
    question_keys: Sequence[str],
    counts: Counts,
    user_ids: Sequence[int] | None = None,
) -> Subquery:
    """One row per (student, question) answered: the counted answer and its parts.

    Columns: user_id, question_key, submission_id, result_id, auto, verdict, manual, override,
    raw, penalty, score (effective), late, needs_grading.
    """
    grade = ManualGrade
    raw = case(
        (grade.id.is_not(None), grade.score),
        (QuestionResult.verdict == Verdict.PENDING_MANUAL, literal(None, Float)),
        else_=QuestionResult.score,
    )
    answers_query = (
        select(
            Submission.user_id.label("user_id"),
            QuestionResult.question_key.label("question_key"),
            Submission.id.label("submission_id"),
            Submission.created_at.label("created_at"),
            QuestionResult.id.label("result_id"),
            QuestionResult.score.label("auto"),
            _verdict(grade).label("verdict"),
            case((grade.kind == ManualGradeKind.MANUAL, grade.score)).label("manual"),
            case((grade.kind == ManualGradeKind.OVERRIDE, grade.score)).label("override"),
            raw.label("raw"),
            Submission.late_penalty.label("penalty"),
            _round6(raw * (1 - Submission.late_penalty)).label("score"),
            case((Submission.late_seconds > 0, 1), else_=0).label("late"),
        )
        .join(QuestionResult, QuestionResult.submission_id == Submission.id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .outerjoin(
            grade,
            and_(grade.submission_id == Submission.id, grade.question_key == QuestionResult.question_key),
        )
        .where(
            AssignmentVersion.assignment_id == assignment_id,
            QuestionResult.is_current.is_(true()),
            QuestionResult.question_key.in_(list(question_keys)),
            or_(grade.id.is_not(None), QuestionResult.verdict.not_in(_UNCOUNTABLE)),
        )
    )
    if user_ids is not None:
        answers_query = answers_query.where(Submission.user_id.in_(list(user_ids)))
    answers = answers_query.subquery("answers")

    newest_first = (answers.c.created_at.desc(), answers.c.submission_id.desc())
    order: tuple[ColumnElement[Any], ...] = newest_first
    if counts == "best":
        # Highest effective first; an answer still waiting for a person ranks below every scored one.
        order = (case((answers.c.score.is_(None), 1), else_=0), answers.c.score.desc(), *newest_first)
    per_cell = (answers.c.user_id, answers.c.question_key)
    waiting = func.max(case((answers.c.raw.is_(None), 1), else_=0)).over(partition_by=per_cell)
    ranked = select(
        *answers.c,
        func.row_number().over(partition_by=per_cell, order_by=order).label("rank"),
        waiting.label("any_waiting"),
    ).subquery("ranked")
    # "last": the counted answer waits for a person; "best": any of them does (it might win).
    needs_grading = case((ranked.c.raw.is_(None), 1), else_=0) if counts == "last" else ranked.c.any_waiting
    return (
        select(
            ranked.c.user_id,
            ranked.c.question_key,
            ranked.c.submission_id,
            ranked.c.result_id,
            ranked.c.auto,
            ranked.c.verdict,
            ranked.c.manual,
            ranked.c.override,
            ranked.c.raw,
            ranked.c.penalty,
            ranked.c.score,
            ranked.c.late,
            needs_grading.label("needs_grading"),
        )
        .where(ranked.c.rank == 1)
        .subquery("counted")
    )


def _cell_condition(counted: Subquery, cells: CellFilter) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [counted.c.question_key.in_(list(cells.questions))]
    if cells.verdict is not None:
        conditions.append(counted.c.verdict == cells.verdict)
    # The flags are 0/1 integers (CASE), read alike by both backends.
    if cells.late is not None:
        conditions.append(counted.c.late == int(cells.late))
    if cells.needs_grading is not None:
        conditions.append(counted.c.needs_grading == int(cells.needs_grading))
    return and_(*conditions)


@dataclass(frozen=True, slots=True)
class Sort:
    """`by`: "student", "total" or a question key; the cursor's key has the shape this decides."""

    by: str
    descending: bool = False

    @property
    def by_student(self) -> bool:
        return self.by == "student"


@dataclass(frozen=True, slots=True)
class StudentRow:
    user_id: int
    username: str
    total: float
    sort_key: SortKey


def student_page(
    session: Session,
    course_id: int,
    assignment_id: int,
    question_keys: Sequence[str],
    counts: Counts,
    cells: CellFilter,
    sort: Sort,
    after: SortKey | None,
    limit: int | None,
) -> list[StudentRow]:
    """The students of the course (also those who never submitted) with their totals, filtered,
    sorted and cut after the keyset `after`; `limit` None: all of them (the CSV)."""
    counted = counted_cells(assignment_id, question_keys, counts)
    # One pass over the counted cells per student: the total, the sorted question's cell, and
    # whether a cell matches the filters (conditional aggregates instead of a join per need).
    sorted_cell = counted.c.question_key == sort.by
    per_student = (
        select(
            counted.c.user_id,
            _round6(func.sum(func.coalesce(counted.c.score, 0.0))).label("total"),
            func.max(case((sorted_cell, counted.c.score))).label("sorted_score"),
            func.max(case((_cell_condition(counted, cells), 1), else_=0)).label("matches"),
        )
        .group_by(counted.c.user_id)
        .subquery("per_student")
    )
    total = func.coalesce(per_student.c.total, 0.0)
    username: ColumnElement[str] = User.username.expression
    key_columns: list[ColumnElement[Any]]
    if sort.by_student:
        key_columns = [username]
        order: list[ColumnElement[Any]] = [username.desc() if sort.descending else username]
    else:
        if sort.by == "total":
            value: ColumnElement[Any] = total
            missing: ColumnElement[int] = literal(0, Integer)
        else:
            value = func.coalesce(per_student.c.sorted_score, 0.0)
            # Unanswered and ungraded cells last, whichever the direction.
            missing = case((per_student.c.sorted_score.is_(None), 1), else_=0)
        # Descending by negating the number keeps one ascending tuple for the keyset comparison.
        key_columns = [missing, -value if sort.descending else value, username]
        order = list(key_columns)
    statement = (
        select(
            User.id, username, total.label("total"), *(c.label(f"key_{n}") for n, c in enumerate(key_columns))
        )
        .join(Enrollment, Enrollment.user_id == User.id)
        .outerjoin(per_student, per_student.c.user_id == User.id)
        .where(Enrollment.course_id == course_id, Enrollment.role == Role.STUDENT)
        .order_by(*order)
    )
    if cells.selects_rows:
        statement = statement.where(per_student.c.matches == 1)
    if after is not None:
        if sort.by_student:
            statement = statement.where(username < after[0] if sort.descending else username > after[0])
        else:
            statement = statement.where(tuple_(*key_columns) > tuple_(*(literal(part) for part in after)))
    if limit is not None:
        statement = statement.limit(limit)
    rows = session.execute(statement).all()
    return [
        StudentRow(
            row.id,
            row.username,
            float(row.total),
            _sort_key(tuple(row[3:])),
        )
        for row in rows
    ]


def _sort_key(parts: tuple[Any, ...]) -> SortKey:
    if len(parts) == 1:
        return (str(parts[0]),)
    flag, value, username = parts
    return (int(flag), float(value), str(username))


@dataclass(frozen=True, slots=True)
class Cell:
    user_id: int
    question_key: str
    submission_id: uuid.UUID
    result_id: int
    auto: float
    verdict: Verdict
    manual: float | None
    override: float | None
    raw: float | None
    penalty: float
    score: float | None
    late: bool
    needs_grading: bool


def cells_of(
    session: Session,
    assignment_id: int,
    question_keys: Sequence[str],
    counts: Counts,
    user_ids: Sequence[int] | None,
) -> list[Cell]:
    """The counted cells of some students (one page), computed over only their answers; None:
    everyone's (the CSV: a list of every id would cost the database more than it saves)."""
    if (user_ids is not None and not user_ids) or not question_keys:
        return []
    counted = counted_cells(assignment_id, question_keys, counts, user_ids)
    # 20,000 cells for a CSV: through the connection (Core), not the ORM's row loading, and
    # unpacked by position; each costs a few microseconds less, which is most of the request.
    return [
        Cell(
            user,
            key,
            submission,
            result,
            auto,
            Verdict(verdict),
            manual,
            override,
            raw,
            penalty,
            score,
            bool(late),
            bool(needs_grading),
        )
        for (
            user,
            key,
            submission,
            result,
            auto,
            verdict,
            manual,
            override,
            raw,
            penalty,
            score,
            late,
            needs_grading,
        ) in session.connection().execute(select(counted)).all()
    ]


@dataclass(frozen=True, slots=True)
class CountedAnswer:
    verdict: Verdict
    score: float | None
    needs_grading: bool
    details: dict[str, Any]


def counted_answers_to(
    session: Session, course_id: int, assignment_id: int, question_key: str, counts: Counts
) -> list[CountedAnswer]:
    """The counted answer of each student of the course to one question, with the grader's details."""
    counted = counted_cells(assignment_id, [question_key], counts)
    statement = (
        select(counted.c.verdict, counted.c.score, counted.c.needs_grading, QuestionResult.details)
        .join(QuestionResult, QuestionResult.id == counted.c.result_id)
        .join(
            Enrollment,
            and_(Enrollment.user_id == counted.c.user_id, Enrollment.course_id == course_id),
        )
        .where(Enrollment.role == Role.STUDENT)
    )
    return [
        CountedAnswer(Verdict(row.verdict), row.score, bool(row.needs_grading), row.details or {})
        for row in session.execute(statement)
    ]
