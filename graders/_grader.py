"""The grader interface, the kinds of graders and their optional capabilities (the registry that
maps a kind to its grader is in _registry.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from graders._context import GradingContext
from graders._result import GradeResult, JSONValue


class GraderKind(StrEnum):
    CHOICE = "choice"
    TENSOR = "tensor"
    MANUAL = "manual"
    EXPRESSION = "expression"
    NOTEBOOK = "notebook"


class GraderConfig(BaseModel):
    """Base for every grader's typed question config: unknown keys are an authoring error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GraderAnswer(BaseModel):
    """Base for every grader's answer shape, as a student sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


ConfigT = TypeVar("ConfigT", bound=GraderConfig)
AnswerT = TypeVar("AnswerT", bound=GraderAnswer)


class Grader(ABC, Generic[ConfigT, AnswerT]):
    kind: ClassVar[GraderKind]
    # Bumped whenever a change could alter a verdict; stored with every result.
    version: ClassVar[str]
    config_model: type[ConfigT]
    answer_model: type[AnswerT]
    # Whether answers are uploaded files (stored as bytes beside the submission, handed to
    # `grade` as text) instead of JSON in `answers`.
    accepts_upload: ClassVar[bool] = False

    def parse_config(self, raw: Mapping[str, Any]) -> ConfigT:
        """Validate an authored config; raises pydantic.ValidationError."""
        return self.config_model.model_validate(raw)

    def parse_answer(self, raw: object) -> AnswerT:
        """Validate an answer's shape; raises pydantic.ValidationError."""
        return self.answer_model.model_validate(raw)

    @abstractmethod
    def grade(self, config: ConfigT, answer: AnswerT, context: GradingContext) -> GradeResult:
        """Grade one answer. Must not raise for any answer that passed parse_answer."""

    @abstractmethod
    def public_config(self, config: ConfigT) -> dict[str, JSONValue]:
        """What a student may see of the config: never the key or the reference."""

    def reference_names(self, config: ConfigT) -> list[str]:
        """Names of the reference functions this config calls (checked when material is loaded)."""
        return []

    def self_check(self, config: ConfigT, context: GradingContext) -> None:
        """Exercise the reference once at load time, so broken material fails then, not at grading."""

    def check_upload(self, content: bytes) -> str | None:
        """Why an uploaded file cannot be an answer (refused when it is uploaded), or None.

        Only for graders that accept uploads; the checks must be cheap and bounded, since they run
        on the request. Deeper checks belong in `grade`, where they yield an `invalid` verdict."""
        raise NotImplementedError(f"{self.kind} answers are not uploaded")

    def grade_raw_answer(self, config: ConfigT, raw_answer: object, context: GradingContext) -> GradeResult:
        """Grade an answer as sent: one of the wrong form is invalid, never an exception."""
        try:
            answer = self.parse_answer(raw_answer)
        except ValidationError as error:
            return GradeResult.invalid(f"The answer has the wrong form: {_first_error(error)}")
        return self.grade(config, answer, context)


@runtime_checkable
class SupportsVariants(Protocol):
    """Graders whose questions hand each student inputs (GET .../variant)."""

    def inputs_for(self, config: Any, context: GradingContext) -> dict[str, JSONValue]: ...


@runtime_checkable
class SupportsPreview(Protocol):
    """Graders that can show how an answer was read without grading it (POST .../preview)."""

    def preview(self, config: Any, raw_answer: object) -> dict[str, JSONValue]: ...


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
