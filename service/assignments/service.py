from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.orm import Session

from graders import JSONValue, SupportsPreview, SupportsVariants
from service.assignments import repository
from service.assignments.material import LoadedMaterial
from service.assignments.policy import Policy, StoredRules
from service.assignments.schemas import AssignmentView, PreviewView, QuestionView, VariantView
from service.assignments.snapshots import QuestionSnapshot, VersionSnapshot, get_snapshot
from service.auth.service import Principal
from service.config import Settings
from service.courses.service import ensure_course
from service.errors import NotFound, UnprocessableAnswer
from service.models import AssignmentVersion, Question, Role
from service.rate_limits import service as rate_limits


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    slug: str
    version: int
    changed: bool


@dataclass(frozen=True, slots=True)
class AssignmentRules:
    """The policy in force for an assignment (the course's override, else the material's) and
    when its grades were released."""

    assignment_id: int
    policy: Policy
    overridden: bool
    released_at: datetime | None

    @property
    def grades_visible_to_students(self) -> bool:
        return not self.policy.hold_grades or self.released_at is not None

    @property
    def hidden_results_visible(self) -> bool:
        """Whether students see the results of hidden checks (docs/authoring.md): only once the
        staff release the assignment's grades, whether or not the policy holds the grades; until
        then a student sees the public checks' part of such a result. Staff always see all."""
        return self.released_at is not None


@dataclass(frozen=True, slots=True)
class AssignmentAccess:
    snapshot: VersionSnapshot
    role: Role


def load_assignment(session: Session, course_slug: str, loaded: LoadedMaterial) -> LoadOutcome:
    """Store validated material in the course (created if missing) as a new version, unless the
    course's latest version has the same content."""
    material = loaded.material
    course = ensure_course(session, course_slug)
    # Each course holds its own copy: loading hw5 into a second course starts that course's versions.
    assignment = repository.get_assignment(session, course.id, material.slug)
    if assignment is None:
        assignment = repository.add_assignment(session, course.id, material.slug)
    latest = repository.latest_version(session, assignment.id)
    if latest is not None and latest.content_hash == loaded.content_hash:
        return LoadOutcome(material.slug, latest.version, changed=False)
    number = repository.next_version_number(session, assignment.id)
    questions = [
        Question(
            key=question.id,
            position=position,
            kind=question.kind,
            points=question.points,
            prompt=question.prompt,
            config=question.config,
            resource_class=question.resource_class,
        )
        for position, question in enumerate(material.questions)
    ]
    version = AssignmentVersion(
        assignment_id=assignment.id,
        version=number,
        title=material.title,
        content_hash=loaded.content_hash,
        reference_source=loaded.reference_source,
        policy=material.policy.as_json(),
    )
    repository.add_version(session, version, questions)
    return LoadOutcome(material.slug, number, changed=True)


def resolve_access(session: Session, principal: Principal, course_slug: str, slug: str) -> AssignmentAccess:
    """The current version of a course's assignment and the caller's role in that course.

    Unknown courses, unknown assignments and courses the caller is not in are all 404, so that
    existence does not leak.
    """
    found = repository.access_to_assignment(session, course_slug, slug, principal.user_id)
    role = found[1] if found is not None else None
    if found is None or role is None:
        raise NotFound(f"No assignment {slug!r} in course {course_slug!r}.")
    return AssignmentAccess(get_snapshot(session, found[0]), role)


def latest_snapshot(session: Session, course_slug: str, slug: str) -> VersionSnapshot:
    """The newest version of a course's assignment, without an access check (for the operator's tools)."""
    assignment = repository.get_assignment_in_course(session, course_slug, slug)
    latest = repository.latest_version(session, assignment.id) if assignment else None
    if latest is None:
        raise NotFound(f"No assignment {slug!r} in course {course_slug!r}.")
    return get_snapshot(session, latest.id)


def current_rules(session: Session, snapshot: VersionSnapshot) -> AssignmentRules:
    """The rules of the snapshot's assignment now: read each time, since staff change them. The
    material's policy is the newest version's, whichever version `snapshot` is (a submission's
    older version must not keep its old deadline or release its grades while the newest holds them)."""
    return rules_in_force(snapshot, repository.stored_rules(session, snapshot.assignment_id))


def rules_in_force(snapshot: VersionSnapshot, stored: StoredRules | None) -> AssignmentRules:
    """The rules current_rules reads, from their stored parts (read by the caller with more)."""
    override = None if stored is None else stored.override
    if override is None or override[0] is None:
        material = (
            snapshot.material_policy
            if stored is None or stored.newest_version_id == snapshot.id
            else Policy.model_validate(stored.material_policy)
        )
        released_at = None if override is None else override[1]
        return AssignmentRules(snapshot.assignment_id, material, False, released_at)
    return AssignmentRules(snapshot.assignment_id, Policy.model_validate(override[0]), True, override[1])


@dataclass(frozen=True, slots=True)
class TaughtAssignment:
    course: str
    course_title: str
    assignment: str
    title: str
    version: int


def assignments_taught_by(session: Session, principal: Principal) -> list[TaughtAssignment]:
    """Every assignment of the courses the caller teaches (TA or instructor), by course."""
    return [TaughtAssignment(*row) for row in repository.assignments_taught_by(session, principal.user_id)]


def _question(access: AssignmentAccess, question_key: str) -> QuestionSnapshot:
    question = access.snapshot.question(question_key)
    if question is None:
        raise NotFound(f"No question {question_key!r} in {access.snapshot.assignment_slug!r}.")
    return question


def variant_inputs(
    settings: Settings, access: AssignmentAccess, principal: Principal, question_key: str
) -> dict[str, JSONValue]:
    question = _question(access, question_key)
    grader = question.grader
    if not isinstance(grader, SupportsVariants):
        raise UnprocessableAnswer(f"Question {question_key!r} has no inputs to fetch.")
    seed = access.snapshot.variant_seed(settings.secret_key, question_key, principal.user_id)
    return grader.inputs_for(question.config, access.snapshot.context(seed))


def preview_answer(access: AssignmentAccess, question_key: str, raw_answer: object) -> dict[str, JSONValue]:
    """How an answer would be read; grades nothing and costs no attempt."""
    question = _question(access, question_key)
    grader = question.grader
    if not isinstance(grader, SupportsPreview):
        raise UnprocessableAnswer(f"Question {question_key!r} has nothing to preview.")
    try:
        return grader.preview(question.config, raw_answer)
    except ValidationError as error:
        raise UnprocessableAnswer(
            "The answer has the wrong form.", details=str(error.errors()[0]["msg"])
        ) from None


def assignment_view(session: Session, principal: Principal, course_slug: str, slug: str) -> AssignmentView:
    access = resolve_access(session, principal, course_slug, slug)
    snapshot = access.snapshot
    return AssignmentView(
        slug=snapshot.assignment_slug,
        title=snapshot.title,
        version=snapshot.version,
        max_score=snapshot.max_score,
        your_role=access.role.value,
        questions=[
            QuestionView(
                id=question.key,
                kind=question.kind,
                points=question.points,
                prompt=question.prompt,
                resource_class=question.resource_class,
                config=question.grader.public_config(question.config),
            )
            for question in snapshot.questions
        ],
    )


def variant_view(
    session: Session, settings: Settings, principal: Principal, course_slug: str, slug: str, question_key: str
) -> VariantView:
    access = resolve_access(session, principal, course_slug, slug)
    inputs = variant_inputs(settings, access, principal, question_key)
    return VariantView(assignment=slug, question=question_key, inputs=inputs)


def preview_view(
    session: Session,
    settings: Settings,
    principal: Principal,
    course_slug: str,
    slug: str,
    question_key: str,
    raw_answer: object,
) -> PreviewView:
    access = resolve_access(session, principal, course_slug, slug)
    rate_limits.take_preview_slot(session, settings, principal.user_id)
    return PreviewView.model_validate(preview_answer(access, question_key, raw_answer))
