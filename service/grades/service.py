"""Gradebooks and question statistics for the course's staff, and the operator's CSV export.

The JSON page, the CSV (API and CLI) and the statistics all read the counted cells of one query
(repository.counted_cells), so they cannot disagree about which answer counts or what it is worth.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from graders import Verdict
from service.assignments.service import current_rules, latest_snapshot, resolve_access
from service.assignments.snapshots import QuestionSnapshot, VersionSnapshot
from service.auth.service import Principal
from service.errors import Forbidden, NotFound, UnprocessableAnswer
from service.grades import repository
from service.grades.mistakes import mistakes_in
from service.grades.repository import Cell, CellFilter, Counts, Sort, SortKey, StudentRow
from service.grades.schemas import (
    Gradebook,
    GradebookCell,
    GradebookRow,
    HistogramBin,
    MistakeCount,
    QuestionColumn,
    QuestionStatistics,
)

MAX_CURSOR_CHARS = 512
MAX_MISTAKES = 20
# A cursor's username is a users.username (String(64)).
_MAX_USERNAME = 64


def _finite(value: int | float) -> bool:
    # An int past float's range (10**309 in a forged cursor) overflows in math.isfinite: a 500.
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _username_like(value: object) -> bool:
    # Printable only: a NUL would reach PostgreSQL, which refuses it in a string (a 500, not a 422).
    return isinstance(value, str) and len(value) <= _MAX_USERNAME and value.isprintable()


@dataclass(frozen=True, slots=True)
class GradebookQuery:
    """A gradebook request as the route read it; checked here against the assignment."""

    question: str | None = None
    verdict: Verdict | None = None
    late: bool | None = None
    needs_grading: bool | None = None
    sort: str = "student"
    descending: bool = False
    limit: int | None = 100
    after: str | None = None


def _staff_snapshot(session: Session, principal: Principal, course_slug: str, slug: str) -> VersionSnapshot:
    access = resolve_access(session, principal, course_slug, slug)
    if not access.role.is_staff:
        raise Forbidden("Only the course's TAs and instructors see the gradebook.")
    return access.snapshot


def gradebook(
    session: Session, principal: Principal, course_slug: str, slug: str, query: GradebookQuery
) -> Gradebook:
    snapshot = _staff_snapshot(session, principal, course_slug, slug)
    return _gradebook(session, snapshot, course_slug, query)


def gradebook_csv(
    session: Session, principal: Principal, course_slug: str, slug: str, query: GradebookQuery
) -> str:
    """The whole gradebook (filters and sort apply, pagination does not) as CSV."""
    snapshot = _staff_snapshot(session, principal, course_slug, slug)
    whole = GradebookQuery(
        query.question, query.verdict, query.late, query.needs_grading, query.sort, query.descending, None
    )
    return _as_csv(_read(session, snapshot, whole), snapshot.max_score)


def export_csv(session: Session, course_slug: str, slug: str) -> str:
    """The CLI's `grades export`: every student of the course, the same query as the API's CSV."""
    snapshot = latest_snapshot(session, course_slug, slug)
    return _as_csv(_read(session, snapshot, GradebookQuery(limit=None)), snapshot.max_score)


@dataclass(frozen=True, slots=True)
class CountedTotal:
    """A student's score for an assignment as the gradebook counts it."""

    score: float
    max_score: float
    # A counted answer (or, under `best`, any answer that might win) still waits for a TA.
    pending_manual: bool


def counted_total(session: Session, course_slug: str, slug: str, user_id: int) -> CountedTotal:
    """The student's gradebook total: per question the answer the policy counts (`counts` = last
    or best), after its late penalty, over the newest version's questions; what the LMS's gradebook
    is sent (service/lms)."""
    snapshot = latest_snapshot(session, course_slug, slug)
    counts = current_rules(session, snapshot).policy.counts
    keys = [question.key for question in snapshot.questions]
    cells = repository.cells_of(session, snapshot.assignment_id, keys, counts, [user_id])
    return CountedTotal(
        score=round(sum(cell.score or 0.0 for cell in cells), 6),
        max_score=snapshot.max_score,
        pending_manual=any(cell.needs_grading for cell in cells),
    )


@dataclass(frozen=True, slots=True)
class _Read:
    """One read of the gradebook: the page's students and their counted cells, before the JSON
    models are built (the CSV formats the cells directly: 20,000 models cost more than the query)."""

    counts: Counts
    shown: list[QuestionSnapshot]
    students: list[StudentRow]
    cells: dict[int, dict[str, Cell]]
    next: str | None


def _read(session: Session, snapshot: VersionSnapshot, query: GradebookQuery) -> _Read:
    counts = current_rules(session, snapshot).policy.counts
    all_keys = [question.key for question in snapshot.questions]
    shown = list(snapshot.questions)
    if query.question is not None:
        if query.question not in all_keys:
            raise UnprocessableAnswer(f"No question {query.question!r}; questions are {', '.join(all_keys)}.")
        shown = [question for question in shown if question.key == query.question]
    if query.sort not in ("student", "total", *all_keys):
        raise UnprocessableAnswer(
            f"Cannot sort by {query.sort!r}: sort by student, total or a question ({', '.join(all_keys)})."
        )
    sort = Sort(query.sort, query.descending)
    after = _read_cursor(query.after, sort) if query.after is not None else None
    shown_keys = [question.key for question in shown]
    cells = CellFilter(shown_keys, query.verdict, query.late, query.needs_grading)
    # One row more than the page says whether there is a next page.
    fetch = None if query.limit is None else query.limit + 1
    students = repository.student_page(
        session, snapshot.course_id, snapshot.assignment_id, all_keys, counts, cells, sort, after, fetch
    )
    page = students if query.limit is None else students[: query.limit]
    has_more = query.limit is not None and len(students) > query.limit
    by_student: dict[int, dict[str, Cell]] = {student.user_id: {} for student in page}
    page_ids = None if query.limit is None else [student.user_id for student in page]
    for cell in repository.cells_of(session, snapshot.assignment_id, shown_keys, counts, page_ids):
        if cell.user_id in by_student:  # else: the whole gradebook's, of a student filtered out
            by_student[cell.user_id][cell.question_key] = cell
    cursor = _write_cursor(sort, page[-1].sort_key) if has_more else None
    return _Read(counts, shown, page, by_student, cursor)


def _gradebook(
    session: Session, snapshot: VersionSnapshot, course_slug: str, query: GradebookQuery
) -> Gradebook:
    read = _read(session, snapshot, query)
    return Gradebook(
        course=course_slug,
        assignment=snapshot.assignment_slug,
        version=snapshot.version,
        counts=read.counts,
        max_score=snapshot.max_score,
        questions=[QuestionColumn(key=q.key, points=q.points) for q in read.shown],
        limit=query.limit or len(read.students),
        rows=[
            GradebookRow(
                student=student.username,
                total=student.total,
                max_score=snapshot.max_score,
                questions={key: _cell_view(cell) for key, cell in read.cells[student.user_id].items()},
            )
            for student in read.students
        ],
        next=read.next,
    )


def _cell_view(cell: Cell) -> GradebookCell:
    return GradebookCell(
        score=cell.score,
        raw=cell.raw,
        auto=cell.auto,
        manual=cell.manual,
        override=cell.override,
        penalty=cell.penalty,
        late=cell.late,
        verdict=cell.verdict,
        needs_grading=cell.needs_grading,
        submission_id=cell.submission_id,
    )


# --- the keyset cursor ---------------------------------------------------------------------------
# Opaque to clients: base64url of [sort, descending, key]. It names the last row's sort key, so a
# row inserted or changed elsewhere never shifts the next page by one; it is hostile input when
# it comes back, and every part of it is checked before it reaches a query.


def _write_cursor(sort: Sort, key: SortKey) -> str:
    raw = json.dumps([sort.by, sort.descending, list(key)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _read_cursor(cursor: str, sort: Sort) -> SortKey:
    invalid = UnprocessableAnswer("The cursor `after` is not one this gradebook gave out.")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    if not (isinstance(decoded, list) and len(decoded) == 3 and isinstance(decoded[2], list)):
        raise invalid
    by, descending, key = decoded
    if by != sort.by or descending is not sort.descending:
        raise UnprocessableAnswer(
            "The cursor `after` belongs to another sort order; start again without it.", details={"sort": by}
        )
    if sort.by_student:
        if len(key) == 1 and _username_like(key[0]):
            return (str(key[0]),)
        raise invalid
    if len(key) == 3:
        flag, value, username = key
        if (
            flag in (0, 1)
            and not isinstance(flag, bool)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and _finite(value)
            and _username_like(username)
        ):
            return (int(flag), float(value), str(username))
    raise invalid


# --- CSV ------------------------------------------------------------------------------------------


def _as_csv(read: _Read, max_score: float) -> str:
    """One row per student: total, maximum, and each question's effective score; "pending" where
    the counted answer waits for a person, empty where there is no answer."""
    keys = [question.key for question in read.shown]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "total", "max_score", *keys])
    for student in read.students:
        cells = read.cells[student.user_id]
        writer.writerow(
            [_spreadsheet_safe(student.username), f"{student.total:g}", f"{max_score:g}"]
            + [_cell_text(cells.get(key)) for key in keys]
        )
    return buffer.getvalue()


def _cell_text(cell: Cell | None) -> str:
    if cell is None:
        return ""
    if cell.score is None:
        return "pending"
    return f"{cell.score:g}"


def _spreadsheet_safe(text: str) -> str:
    # A leading =, +, - or @ makes a spreadsheet run the cell as a formula (CSV injection).
    return f"'{text}" if text.startswith(("=", "+", "-", "@")) else text


# --- statistics -----------------------------------------------------------------------------------


def question_statistics(
    session: Session, principal: Principal, course_slug: str, slug: str, question_key: str, bins: int
) -> QuestionStatistics:
    snapshot = _staff_snapshot(session, principal, course_slug, slug)
    question = snapshot.question(question_key)
    if question is None:
        raise NotFound(f"No question {question_key!r} in {slug!r}.")
    counts = current_rules(session, snapshot).policy.counts
    answers = repository.counted_answers_to(
        session, snapshot.course_id, snapshot.assignment_id, question_key, counts
    )
    scores = [answer.score for answer in answers if answer.score is not None]
    verdicts = Counter(answer.verdict.value for answer in answers)
    mistakes: Counter[tuple[str, str]] = Counter()
    for answer in answers:
        # One count per answer: a mistake named twice in one answer is still one student's.
        mistakes.update(set(mistakes_in(question.kind, answer.verdict, answer.details)))
    diagnoses: Counter[str] = Counter()
    for (diagnosis, _message), count in mistakes.items():
        diagnoses[diagnosis] += count
    return QuestionStatistics(
        course=course_slug,
        assignment=slug,
        question=question_key,
        kind=question.kind,
        points=question.points,
        counts=counts,
        count=len(answers),
        mean=round(statistics.fmean(scores), 6) if scores else None,
        median=round(statistics.median(scores), 6) if scores else None,
        histogram=_histogram(scores, question, bins),
        verdicts=dict(sorted(verdicts.items())),
        needs_grading=sum(answer.needs_grading for answer in answers),
        diagnoses=dict(diagnoses.most_common()),
        mistakes=[
            MistakeCount(diagnosis=diagnosis, message=message, count=count)
            for (diagnosis, message), count in sorted(mistakes.items(), key=lambda item: (-item[1], item[0]))[
                :MAX_MISTAKES
            ]
        ],
    )


def _histogram(scores: Sequence[float], question: QuestionSnapshot, bins: int) -> list[HistogramBin]:
    """`bins` equal bins over 0..points; full marks fall in the last bin."""
    points = question.points if question.points > 0 else 1.0
    width = points / bins
    counted = [0] * bins
    for score in scores:
        # score x bins / points, not score / width: 0.6 / 0.2 is 2.999..., 0.6 x 10 / 2 is 3.
        counted[min(max(int(score * bins / points), 0), bins - 1)] += 1
    return [
        HistogramBin(low=round(n * width, 6), high=round((n + 1) * width, 6), count=count)
        for n, count in enumerate(counted)
    ]
