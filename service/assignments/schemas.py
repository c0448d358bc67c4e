from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PreviewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"expression": "\\hat{y}_t - y_t", "format": "latex"}]},
    )

    expression: str = Field(max_length=2_000)
    # Omitted: a backslash means LaTeX.
    format: Literal["text", "latex"] | None = None


class PreviewView(BaseModel):
    format: str
    ok: bool
    # The canonical text form of the answer as it was read, e.g. `yhat[t] - y[t]`.
    read_as: str | None
    error: str | None
    # 0-based character offset of the error, where known.
    position: int | None
