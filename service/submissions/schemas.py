from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from graders import JSONValue, Verdict, storable_details
from service.policies.schemas import LatenessView

SubmissionStatus = Literal["queued", "running", "graded", "error"]


# The answer of each question kind, as the OpenAPI document describes it to clients. The request
# only checks that each answer is an object: the question's kind decides its shape, and the service
# validates it against that kind's grader, naming every bad answer in one 422.
class ChoiceAnswer(BaseModel):
    """A choice question's answer: the chosen options, numbered from 1."""

    model_config = ConfigDict(extra="forbid")

    choices: list[int] = Field(max_length=26)


class ExpressionAnswer(BaseModel):
    """A formula; `format` omitted, a backslash means LaTeX."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(max_length=2_000)
    format: Literal["text", "latex"] | None = None


class TensorAnswer(BaseModel):
    """A tensor question's answer: a number or a nested (rectangular) list of numbers."""

    model_config = ConfigDict(extra="forbid")

    value: int | float | list[Any]


class TextAnswer(BaseModel):
    """A free-text answer, graded by hand (manual questions)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=200_000)


class OneOfAnswers:
    """Renders the answer union as `oneOf` (pydantic writes `anyOf`): the shapes never overlap,
    each has its own required key and no other, so an answer matches exactly one."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        union = handler(core_schema)
        return {"oneOf": union["anyOf"]}


def _as_sent(answer: object) -> object:
    return answer


# Validated as a plain object here (the question decides the shape); described as the union.
Answer = Annotated[
    dict[str, Any],
    BeforeValidator(
        _as_sent, json_schema_input_type=ChoiceAnswer | ExpressionAnswer | TensorAnswer | TextAnswer
    ),
    OneOfAnswers(),
]


class SubmissionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "answers": {
                        "q1_1": {"choices": [2, 3]},
                        "q3_1": {"value": [6, 1, 2]},
                        "q3_2": {"text": "Argmax is not differentiable ..."},
                    }
                }
            ]
        },
    )

    # Per question id, the answer in the shape its kind expects (the models above). Notebooks are
    # uploaded as files (multipart/form-data), never given here.
    answers: dict[str, Answer] = Field(max_length=200)


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart submission: the question it answers, its name and its bytes."""

    question_key: str
    filename: str
    content: bytes


class SubmissionAccepted(BaseModel):
    id: uuid.UUID
    course: str
    assignment: str
    status: SubmissionStatus
    created_at: datetime
    url: str


class AppliedRubricItem(BaseModel):
    """A rubric item of a manual question (numbered from 1) as a TA applied it."""

    item: int
    description: str
    points: float
    applied: bool
    comment: str


class PersonGradeView(BaseModel):
    # `manual`: a TA's grade of an answer left to people; `override`: of an automatic score.
    kind: Literal["manual", "override"]
    # The rubric items as the TA applied them (empty when they gave a bare score).
    rubric: list[AppliedRubricItem]
    # Staff only: the grade's version, to change it (`version` or If-Match).
    version: int | None = None


class HiddenChecksView(BaseModel):
    """An answer some of whose checks are hidden: their results reach the student only once the
    staff release the assignment's grades (docs/authoring.md, "Public and hidden checks")."""

    # Always true where shown: the hidden checks' results are held back.
    pending: bool = True
    # The hidden checks' share of the question's points (not counted in the score shown).
    points: float


class QuestionResultView(BaseModel):
    # With a person's grade (service.marking), the verdict, score and feedback are theirs.
    # For a student while hidden checks are held (`hidden` set): the public checks' verdict, score
    # and feedback only; the verdict is null when every check of the answer is hidden.
    verdict: Verdict | None
    score: float
    max_score: float
    feedback: str
    # Staff only: expected values and diagnostics.
    details: dict[str, JSONValue] | None = None
    # Set when a person graded the answer (service.marking).
    person_grade: PersonGradeView | None = None
    # Students only: set while the answer's hidden checks are held back.
    hidden: HiddenChecksView | None = None

    @field_validator("details", mode="before")
    @classmethod
    def _bounded(cls, details: object) -> object:
        # Graders bound details when they are made; rows stored before that may be nested deeper
        # than validation can follow, and a staff view must still open (and an override answer).
        return storable_details(details) if isinstance(details, Mapping) else details


class SubmissionView(BaseModel):
    id: uuid.UUID
    course: str
    assignment: str
    assignment_version: int
    student: str
    status: SubmissionStatus
    # The raw total (manual grades win over automatic results); effective_score is after the late
    # rule. Both None (and `questions` empty) for a student while the assignment holds grades.
    # With `hidden_pending` (students only), both count only the public checks of the answers
    # whose hidden checks are held back: the hidden checks' points are not in them.
    score: float | None
    effective_score: float | None = None
    max_score: float
    grades_held: bool = False
    hidden_pending: bool = False
    lateness: LatenessView
    created_at: datetime
    graded_at: datetime | None
    questions: dict[str, QuestionResultView]
    # Staff only: the answers as sent and why grading failed.
    answers: dict[str, Any] | None = None
    error: str | None = None


class SubmissionSummary(BaseModel):
    id: uuid.UUID
    student: str
    status: SubmissionStatus
    score: float | None
    effective_score: float | None = None
    late_penalty: float = 0.0
    grades_held: bool = False
    # As SubmissionView's: the scores leave out hidden checks whose results are held back.
    hidden_pending: bool = False
    max_score: float
    created_at: datetime


class SubmissionList(BaseModel):
    course: str
    assignment: str
    items: list[SubmissionSummary]
    limit: int
    offset: int


class DaySubmissions(BaseModel):
    day: date
    count: int


class AssignmentActivity(BaseModel):
    """Staff: where an assignment's grading stands, and when its submissions came in."""

    course: str
    assignment: str
    title: str
    version: int
    submissions: int
    # By the state of each submission's first grading (a regrade's jobs are the regrade's).
    graded: int
    in_progress: int
    errors: int
    # Answers the graders left to a person that no one has graded yet.
    awaiting_manual: int
    # Days in the policy's time zone, oldest first, without gaps (days without a submission: 0).
    timezone: str
    per_day: list[DaySubmissions]


class GradingRunView(BaseModel):
    """One grading of a submission: revision 1 is the first, each regrade adds the next."""

    revision: int
    status: Literal["queued", "running", "done", "error"]
    # Claims so far (a crashed worker's lease expiring lets another claim it) and the limit.
    attempt: int
    max_attempts: int
    # Set when a regrade made this run; the question when it regraded only one.
    regrade: uuid.UUID | None
    question: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class ResultRevisionView(BaseModel):
    """One question's automatic result as one grading wrote it (before a person's grade)."""

    question: str
    revision: int
    current: bool
    verdict: Verdict
    score: float
    max_score: float
    grader_version: str
    job_attempt: int
    graded_at: datetime


class GradingHistory(BaseModel):
    """Staff: how a submission was graded, every run and every result revision."""

    runs: list[GradingRunView]
    results: list[ResultRevisionView]
