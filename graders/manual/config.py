from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from graders._grader import GraderAnswer, GraderConfig


class RubricItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    points: float = Field(ge=0)


class ManualConfig(GraderConfig):
    # The rubric guides the TA; it is staff-only, like any key.
    rubric: list[RubricItem] = Field(default_factory=list)
    max_length: int = Field(default=20_000, ge=1, le=200_000)


class ManualAnswer(GraderAnswer):
    text: str = Field(max_length=200_000)
