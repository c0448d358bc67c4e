from __future__ import annotations

from pydantic import BaseModel

from graders import JSONValue


class QuestionView(BaseModel):
    id: str
    kind: str
    points: float
    prompt: str
    resource_class: str
    # The grader's public part of the config (options, fixed inputs, tolerances); never the key.
    config: dict[str, JSONValue]


class AssignmentView(BaseModel):
    slug: str
    title: str
    version: int
    max_score: float
    your_role: str
    questions: list[QuestionView]


class VariantView(BaseModel):
    assignment: str
    question: str
    inputs: dict[str, JSONValue]
