from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from graders._grader import GraderAnswer, GraderConfig
from graders._result import JSONValue


class TensorConfig(GraderConfig):
    # Name of the reference function that computes the expected output from the inputs.
    reference: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Either fixed inputs, the same for every student ...
    inputs: dict[str, JSONValue] | None = None
    # ... or the name of a reference function drawing a student's inputs from a numpy Generator.
    variant: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    rtol: float = Field(default=1e-5, ge=0)
    atol: float = Field(default=1e-8, ge=0)
    max_elements: int = Field(default=10_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _one_source_of_inputs(self) -> TensorConfig:
        if (self.inputs is None) == (self.variant is None):
            raise ValueError("give exactly one of inputs (fixed) or variant (per student)")
        return self


class TensorAnswer(GraderAnswer):
    # A number or a nested list of numbers; the grader checks rectangularity and size.
    value: int | float | list[Any]
