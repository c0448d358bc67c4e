from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from graders._grader import GraderAnswer, GraderConfig
from graders.expression.functions import FUNCTIONS
from graders.expression.limits import DEFAULT_LIMITS

IDENTIFIER = r"^[A-Za-z][A-Za-z0-9_]*$"


class Diagnosis(StrEnum):
    """Mistakes the grader can name; each may earn partial credit (default none)."""

    SHAPE = "shape"
    SIGN = "sign"
    FACTOR = "factor"
    INDEX = "index"
    TRANSPOSE = "transpose"


class IndexRange(BaseModel):
    """A free index of the question and its admissible values: `i` from 1 to `t` inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=IDENTIFIER)
    low: int
    high: int | str  # a number, or the name of an index declared before this one


class SymbolDeclaration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=IDENTIFIER)
    # The value's shape: [] for a scalar, [2] for a 2-vector.
    shape: list[int] = Field(default_factory=list, max_length=2)
    # A sequence is indexed by time: name[k]; first_index is the smallest k that exists.
    sequence: bool = False
    first_index: int = 1
    # LaTeX spellings; '#' stands for an index expression, e.g. "g_{o,#}" or "\\hat{y}_{#}".
    # A sequence's spellings get "_{#}" (and "_{#,#}" for a component) added when they have no '#'.
    latex: list[str] = Field(default_factory=list)
    meaning: str = ""


class DerivationConfig(BaseModel):
    """How an answer written as a derivation `a = b = c` is scored (every step is checked anyway)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # False: graded on the last side; a step that does not hold is named in the feedback only.
    graded: bool = False
    # With graded: the share of the score earned by the steps that hold, the rest by the last side.
    step_weight: float = Field(default=0.5, gt=0.0, lt=1.0)
    # With graded: an answer with fewer steps earns the missing ones' share as steps that fail.
    min_steps: int = Field(default=1, ge=0, le=DEFAULT_LIMITS.max_sides - 1)

    @model_validator(mode="after")
    def _only_when_graded(self) -> DerivationConfig:
        # Compared with the defaults, not with the keys given: a dumped config must load again.
        defaults = DerivationConfig.model_fields
        if not self.graded and (
            self.step_weight != defaults["step_weight"].default
            or self.min_steps != defaults["min_steps"].default
        ):
            raise ValueError("step_weight and min_steps apply only with graded = true")
        return self


class ExpressionConfig(GraderConfig):
    # f(rng: numpy.random.Generator, indices: dict[str, int]) -> (symbol values, expected value),
    # computing the expected value with torch.autograd, never from a formula.
    reference: str = Field(pattern=IDENTIFIER)
    indices: list[IndexRange] = Field(default_factory=list)
    # Names that sum/prod may bind (and that may appear as free indices).
    index_names: list[str] = Field(default_factory=lambda: ["t", "i", "k"])
    symbols: list[SymbolDeclaration] = Field(min_length=1)
    functions: list[str] = Field(default_factory=list)
    points: int = Field(default=32, ge=1, le=1024)
    seed: int = 0
    rtol: float = Field(default=1e-6, ge=0)
    atol: float = Field(default=1e-9, ge=0)
    partial_credit: dict[Diagnosis, float] = Field(default_factory=dict)
    max_length: int = Field(default=2_000, ge=1, le=2_000)
    # Feedback on a mismatch names the student's value at a point; the value due there only if True.
    show_expected: bool = False
    derivation: DerivationConfig = Field(default_factory=DerivationConfig)

    @model_validator(mode="after")
    def _consistent(self) -> ExpressionConfig:
        unknown = sorted(set(self.functions) - set(FUNCTIONS))
        if unknown:
            raise ValueError(f"unknown functions {unknown}; known: {sorted(FUNCTIONS)}")
        names = [symbol.name for symbol in self.symbols]
        clashes = (set(names) & set(self.index_names)) | (set(names) & set(self.functions))
        if len(set(names)) != len(names) or clashes:
            raise ValueError(f"symbol, index and function names must be distinct: {sorted(clashes) or names}")
        seen: list[str] = []
        for index in self.indices:
            if index.name not in self.index_names:
                raise ValueError(f"index {index.name!r} is not in index_names")
            if isinstance(index.high, str) and index.high not in seen:
                raise ValueError(f"index {index.name!r} is bounded by {index.high!r}, declared after it")
            seen.append(index.name)
        for diagnosis, fraction in self.partial_credit.items():
            if not 0.0 <= fraction < 1.0:
                raise ValueError(f"partial credit for {diagnosis} must lie in [0, 1)")
        return self

    def symbol(self, name: str) -> SymbolDeclaration | None:
        return next((symbol for symbol in self.symbols if symbol.name == name), None)


class ExpressionAnswer(GraderAnswer):
    expression: str = Field(max_length=2_000)
    # Omitted: a backslash or a braced script (`_{`, `^{`) means LaTeX.
    format: Literal["text", "latex"] | None = None
