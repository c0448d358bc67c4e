from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from graders import JSONValue
from service.models import Queue

MAX_PREVIEW_LENGTH = 500


class QuestionView(BaseModel):
    id: str
    kind: str
    points: float
    prompt: str
    resource_class: Queue
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

    # Shorter than a submitted formula may be (2,000): a preview is parsed on the request path, and
    # the parse of a 1,900-character subscript costs ~40 ms, of 500 characters at most ~9 ms.
    expression: str = Field(max_length=MAX_PREVIEW_LENGTH)
    # Omitted: a backslash or a braced script (`_{`, `^{`) means LaTeX.
    format: Literal["text", "latex"] | None = None


class PreviewView(BaseModel):
    format: str
    ok: bool
    # The canonical text form of the answer as it was read, e.g. `yhat[t] - y[t]`.
    read_as: str | None
    read_as_latex: str | None = Field(
        description=(
            "The answer as it was read, written as LaTeX in the question's declared spellings "
            "(e.g. `\\hat{y}_{t} - y_{t}`), for showing it typeset; null when it cannot be read."
        )
    )
    error: str | None
    # 0-based character offset of the error, where known.
    position: int | None
    # How the answer was read when that differs from what was asked: "Read as LaTeX: ...".
    note: str | None = None
