"""Immutable, parsed views of an assignment version, cached per process (versions never change)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from graders import (
    Grader,
    GraderConfig,
    GradingContext,
    ReferenceFunctions,
    derive_variant_seed,
    get_grader,
)
from service.assignments import repository
from service.assignments.policy import Policy
from service.assignments.references import load_reference_functions
from service.models import Queue


@dataclass(frozen=True, slots=True)
class QuestionSnapshot:
    id: int
    key: str
    kind: str
    points: float
    prompt: str
    resource_class: Queue
    config: GraderConfig

    @property
    def grader(self) -> Grader[Any, Any]:
        return get_grader(self.kind)


@dataclass(frozen=True, slots=True)
class VersionSnapshot:
    id: int
    assignment_id: int
    assignment_slug: str
    course_id: int
    version: int
    title: str
    content_hash: str
    reference_source: str
    questions: tuple[QuestionSnapshot, ...]
    # The material's policy; the course's override, if any, is read by assignments.service.current_rules.
    material_policy: Policy

    @property
    def max_score(self) -> float:
        return sum(question.points for question in self.questions)

    @property
    def queue(self) -> Queue:
        """The worker queue of a submission: gpu if any of its questions needs one."""
        return Queue.GPU if any(q.resource_class == Queue.GPU for q in self.questions) else Queue.CPU

    def question(self, key: str) -> QuestionSnapshot | None:
        return next((q for q in self.questions if q.key == key), None)

    @property
    def reference_version(self) -> str:
        return self.content_hash[:16]

    def reference(self) -> ReferenceFunctions:
        return load_reference_functions(self.reference_source, self.content_hash)

    def variant_seed(self, secret_key: str, question_key: str, user_id: int) -> int:
        """The seed of one student's variant of a question: stable across versions of the
        assignment, unguessable without the secret key."""
        return derive_variant_seed(secret_key, self.assignment_slug, question_key, str(user_id))

    def context(self, variant_seed: int) -> GradingContext:
        return GradingContext(variant_seed=variant_seed, reference=self.reference())


_snapshots: dict[int, VersionSnapshot] = {}
_MAX_CACHED = 256


def get_snapshot(session: Session, version_id: int) -> VersionSnapshot:
    cached = _snapshots.get(version_id)
    if cached is not None:
        return cached
    version, assignment = repository.get_version_with_assignment(session, version_id)
    questions = tuple(
        QuestionSnapshot(
            id=question.id,
            key=question.key,
            kind=question.kind,
            points=question.points,
            prompt=question.prompt,
            resource_class=question.resource_class,
            config=get_grader(question.kind).parse_config(question.config),
        )
        for question in version.questions
    )
    snapshot = VersionSnapshot(
        id=version.id,
        assignment_id=assignment.id,
        assignment_slug=assignment.slug,
        course_id=assignment.course_id,
        version=version.version,
        title=version.title,
        content_hash=version.content_hash,
        reference_source=version.reference_source,
        questions=questions,
        material_policy=Policy.model_validate(version.policy),
    )
    if len(_snapshots) >= _MAX_CACHED:
        _snapshots.pop(next(iter(_snapshots)))
    _snapshots[version_id] = snapshot
    return snapshot
