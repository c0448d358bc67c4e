"""The gradebook page (sortable, filterable, keyset-paginated) and its CSV, a question's statistics
with its score histogram and common mistakes, and a student's history.

Each page is one call into the grades or marking service inside the request's transaction; the
view models below only turn the service's answers into text and links for the templates.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from graders import Verdict
from service.assignments.service import resolve_access
from service.assignments.snapshots import VersionSnapshot
from service.auth.service import Principal
from service.dashboard.formatting import iso, lateness, number, timestamp
from service.dashboard.histogram import histogram
from service.dashboard.pages import DASHBOARD_PATH, Page, render
from service.errors import NotFound, UnprocessableAnswer
from service.grades import service as grades
from service.grades.schemas import Gradebook, GradebookCell, QuestionStatistics
from service.marking import service as marking
from service.marking.schemas import HistorySubmission, StudentHistory

router = APIRouter(prefix=DASHBOARD_PATH, tags=["dashboard"], include_in_schema=False)

ASSIGNMENT = "/courses/{course}/assignments/{assignment}"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
HISTORY_LIMIT = 100
# Bounds on what the address may carry: a users.username and a question key are String(64).
Slug = Annotated[str, Path(max_length=64)]
Username = Annotated[str, Path(max_length=64)]
VERDICT_LABELS = {
    Verdict.CORRECT: "correct",
    Verdict.PARTIAL: "partial",
    Verdict.INCORRECT: "incorrect",
    Verdict.INVALID: "invalid",
    Verdict.PENDING_MANUAL: "waiting for a TA",
    Verdict.ERROR: "grader error",
}


def assignment_path(course: str, assignment: str) -> str:
    return f"{DASHBOARD_PATH}/courses/{quote(course, safe='')}/assignments/{quote(assignment, safe='')}"


def student_path(course: str, assignment: str, username: str) -> str:
    # Usernames are any printable text ("=HYPERLINK(1)", "a/b"): quoted whole, slash included.
    return f"{assignment_path(course, assignment)}/students/{quote(username, safe='')}"


def statistics_path(course: str, assignment: str, question: str) -> str:
    return f"{assignment_path(course, assignment)}/questions/{quote(question, safe='')}/statistics"


def submission_path(submission_id: uuid.UUID) -> str:
    return f"{DASHBOARD_PATH}/submissions/{submission_id}"


# --- the gradebook's filters and sort, as the address carries them -------------------------------


@dataclass(frozen=True, slots=True)
class GradebookFilters:
    """What the filter form and the sort buttons send; the links of the page keep them."""

    question: str | None
    verdict: Verdict | None
    late: bool
    needs_grading: bool
    sort: str
    order: Literal["asc", "desc"]
    limit: int

    def service_query(self, after: str | None) -> grades.GradebookQuery:
        # Unticked boxes mean "any", not "on time only" / "graded only".
        return grades.GradebookQuery(
            self.question,
            self.verdict,
            True if self.late else None,
            True if self.needs_grading else None,
            self.sort,
            self.order == "desc",
            self.limit,
            after,
        )

    def filter_fields(self) -> list[tuple[str, str]]:
        """The filters as form fields (for the sort buttons' forms), without the defaults."""
        fields = []
        if self.question is not None:
            fields.append(("question", self.question))
        if self.verdict is not None:
            fields.append(("verdict", self.verdict.value))
        if self.late:
            fields.append(("late", "1"))
        if self.needs_grading:
            fields.append(("needs_grading", "1"))
        if self.limit != PAGE_SIZE:
            fields.append(("limit", str(self.limit)))
        return fields

    def query_string(self, after: str | None = None) -> str:
        fields = self.filter_fields()
        if self.sort != "student" or self.order != "asc":
            fields += [("sort", self.sort), ("order", self.order)]
        if after is not None:
            fields.append(("after", after))
        return urlencode(fields)


def gradebook_filters(
    question: Annotated[str, Query(max_length=64)] = "",
    verdict: Annotated[str, Query(max_length=32)] = "",
    late: bool = False,
    needs_grading: bool = False,
    sort: Annotated[str, Query(max_length=64)] = "student",
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = PAGE_SIZE,
) -> GradebookFilters:
    # The form's "any" options send empty strings; the service checks the question and sort keys.
    chosen: Verdict | None = None
    if verdict:
        try:
            chosen = Verdict(verdict)
        except ValueError:
            raise UnprocessableAnswer(f"No verdict {verdict!r}.") from None
    return GradebookFilters(question or None, chosen, late, needs_grading, sort or "student", order, limit)


Filters = Annotated[GradebookFilters, Depends(gradebook_filters)]


# --- the gradebook page ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortButton:
    """A column header's sort control: which sort it asks for, and the column's aria-sort."""

    key: str
    label: str
    order: Literal["asc", "desc"]
    aria_sort: Literal["ascending", "descending", "none"]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    points: str
    sort: SortButton
    statistics: str


@dataclass(frozen=True, slots=True)
class CellView:
    text: str
    href: str | None
    # What a screen reader and a tooltip say beyond the number: verdict, lateness.
    note: str
    css: str


@dataclass(frozen=True, slots=True)
class RowView:
    student: str
    href: str
    total: str
    cells: list[CellView]


def _sort_button(filters: GradebookFilters, key: str, label: str) -> SortButton:
    if filters.sort != key:
        return SortButton(key, label, "asc", "none")
    ascending = filters.order == "asc"
    # Clicking the sorted column turns its order round.
    return SortButton(key, label, "desc" if ascending else "asc", "ascending" if ascending else "descending")


def _cell_view(cell: GradebookCell | None) -> CellView:
    if cell is None:
        return CellView("—", None, "no answer", "empty")
    notes = [VERDICT_LABELS[cell.verdict]]
    if cell.late:
        notes.append(f"late, −{number(cell.penalty * 100)}%")
    if cell.override is not None:
        notes.append("overridden")
    text = "pending" if cell.score is None else number(cell.score)
    css = "pending" if cell.needs_grading else cell.verdict.value
    return CellView(
        text, submission_path(cell.submission_id), ", ".join(notes), css + (" late" if cell.late else "")
    )


@dataclass(frozen=True, slots=True)
class _GradebookRead:
    book: Gradebook
    snapshot: VersionSnapshot
    username: str


@router.get(ASSIGNMENT + "/gradebook")
async def gradebook_page(
    course: Slug,
    assignment: Slug,
    scope: Page,
    filters: Filters,
    after: Annotated[str | None, Query(max_length=grades.MAX_CURSOR_CHARS)] = None,
) -> Response:
    def read(session: Session, principal: Principal) -> _GradebookRead:
        book = grades.gradebook(session, principal, course, assignment, filters.service_query(after))
        # The filter form lists every question, also when the table shows only one.
        snapshot = resolve_access(session, principal, course, assignment).snapshot
        return _GradebookRead(book, snapshot, principal.username)

    found = await scope.run(read)
    book = found.book
    columns = [
        Column(
            key=column.key,
            points=number(column.points),
            sort=_sort_button(filters, column.key, column.key),
            statistics=statistics_path(course, assignment, column.key),
        )
        for column in book.questions
    ]
    rows = [
        RowView(
            student=row.student,
            href=student_path(course, assignment, row.student),
            total=f"{number(row.total)} / {number(row.max_score)}",
            cells=[_cell_view(row.questions.get(column.key)) for column in book.questions],
        )
        for row in book.rows
    ]
    base = assignment_path(course, assignment)
    own = f"{base}/gradebook"
    first_query = filters.query_string()
    return render(
        scope,
        "gradebook.html",
        {
            "title": f"Gradebook: {found.snapshot.title}",
            "user": found.username,
            "assignment_href": base,
            "assignment_title": found.snapshot.title,
            "filters": filters,
            "questions": [question.key for question in found.snapshot.questions],
            "verdicts": [(verdict.value, label) for verdict, label in VERDICT_LABELS.items()],
            "columns": columns,
            "student_sort": _sort_button(filters, "student", "Student"),
            "total_sort": _sort_button(filters, "total", "Total"),
            "rows": rows,
            "counts": book.counts,
            "action": own,
            "next_href": f"{own}?{filters.query_string(book.next)}" if book.next else None,
            "first_href": (f"{own}?{first_query}" if first_query else own) if after is not None else None,
            "csv_href": f"{base}/gradebook.csv" + (f"?{first_query}" if first_query else ""),
        },
    )


@router.get(ASSIGNMENT + "/gradebook.csv")
async def gradebook_csv(course: Slug, assignment: Slug, scope: Page, filters: Filters) -> Response:
    """The API's `?format=csv`: the whole gradebook with the page's filters and sort."""
    text = await scope.run(
        lambda session, principal: grades.gradebook_csv(
            session, principal, course, assignment, filters.service_query(None)
        )
    )
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{assignment}-gradebook.csv"'},
    )


# --- a question's statistics ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StatisticsRead:
    statistics: QuestionStatistics
    title: str
    username: str


@router.get(ASSIGNMENT + "/questions/{question}/statistics")
async def statistics_page(
    course: Slug,
    assignment: Slug,
    question: Slug,
    scope: Page,
    bins: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    def read(session: Session, principal: Principal) -> _StatisticsRead:
        found = grades.question_statistics(session, principal, course, assignment, question, bins)
        title = resolve_access(session, principal, course, assignment).snapshot.title
        return _StatisticsRead(found, title, principal.username)

    found = await scope.run(read)
    stats = found.statistics
    base = assignment_path(course, assignment)
    return render(
        scope,
        "statistics.html",
        {
            "title": f"Statistics: {question}",
            "user": found.username,
            "assignment_href": base,
            "assignment_title": found.title,
            "gradebook_href": f"{base}/gradebook?{urlencode({'question': question})}",
            "grading_href": f"{base}/questions/{quote(question, safe='')}/grading"
            if stats.kind == "manual"
            else None,
            "stats": stats,
            "points": number(stats.points),
            "mean": None if stats.mean is None else number(stats.mean),
            "median": None if stats.median is None else number(stats.median),
            "verdicts": [
                (VERDICT_LABELS.get(Verdict(verdict), verdict), count)
                for verdict, count in stats.verdicts.items()
            ],
            "histogram": histogram(question, stats.histogram),
        },
    )


# --- a student's history --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerView:
    question: str
    verdict: str
    raw: str
    effective: str
    max_score: str
    graded_by: str


@dataclass(frozen=True, slots=True)
class SubmissionView:
    href: str
    submitted: str
    submitted_iso: str
    status: str
    version: int
    lateness: str
    penalty: str
    raw: str
    effective: str
    answers: list[AnswerView]


def _score_text(score: float | None) -> str:
    return "pending" if score is None else number(score)


def _submission_view(submission: HistorySubmission) -> SubmissionView:
    answers = [
        AnswerView(
            question=key,
            verdict="" if answer.verdict is None else VERDICT_LABELS[answer.verdict],
            raw=_score_text(answer.raw),
            effective=_score_text(answer.effective),
            max_score=number(answer.max_score),
            graded_by="" if answer.manual is None else f"{answer.manual.kind} by {answer.manual.graded_by}",
        )
        for key, answer in sorted(submission.questions.items())
    ]
    return SubmissionView(
        href=submission_path(submission.id),
        submitted=timestamp(submission.created_at),
        submitted_iso=iso(submission.created_at),
        status=submission.status,
        version=submission.assignment_version,
        lateness=lateness(submission.late_seconds),
        penalty=f"−{number(submission.late_penalty * 100)}%" if submission.late_penalty else "",
        raw=f"{_score_text(submission.score)} / {number(submission.max_score)}",
        effective=f"{_score_text(submission.effective_score)} / {number(submission.max_score)}",
        answers=answers,
    )


@dataclass(frozen=True, slots=True)
class _HistoryRead:
    history: StudentHistory
    title: str
    username: str


# `:path`: a username may hold a "/" (sent as %2F, which the router sees decoded).
@router.get(ASSIGNMENT + "/students/{username:path}")
async def student_page(course: Slug, assignment: Slug, username: Username, scope: Page) -> Response:
    if not username.isprintable():
        # No user has such a name; PostgreSQL would refuse a NUL in the query (a 500, not a 404).
        raise NotFound(f"No student {username!r} in course {course!r}.")

    def read(session: Session, principal: Principal) -> _HistoryRead:
        history = marking.student_history(session, principal, course, assignment, username, HISTORY_LIMIT)
        title = resolve_access(session, principal, course, assignment).snapshot.title
        return _HistoryRead(history, title, principal.username)

    found = await scope.run(read)
    base = assignment_path(course, assignment)
    return render(
        scope,
        "student.html",
        {
            "title": f"{username}: {found.title}",
            "user": found.username,
            "assignment_href": base,
            "assignment_title": found.title,
            "gradebook_href": f"{base}/gradebook",
            "student": username,
            "submissions": [_submission_view(item) for item in found.history.submissions],
            "limit": HISTORY_LIMIT,
        },
    )
