from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from graders._grader import GraderAnswer, GraderConfig

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamedMistake(_Part):
    # A reference function computing a typical wrong answer from the same inputs ...
    reference: str = Field(pattern=IDENTIFIER)
    # ... and what to tell a student whose output matches it.
    feedback: str = Field(min_length=1, max_length=500)


class FunctionCheck(_Part):
    """Call the notebook's function `name` on generated inputs and compare with `reference`."""

    name: str = Field(pattern=IDENTIFIER)
    points: float = Field(gt=0)
    reference: str = Field(pattern=IDENTIFIER)
    # A reference function drawing one call's arguments from a numpy Generator, as an ordered dict
    # of arrays (the function is called with them positionally, in that order).
    inputs: str = Field(pattern=IDENTIFIER)
    trials: int = Field(default=2, ge=1, le=10)
    seconds: float = Field(default=10.0, gt=0, le=600)
    # Tolerances for float32 on the CPU; on CUDA they are multiplied by cuda_tolerance_factor.
    rtol: float = Field(default=1e-5, ge=0)
    atol: float = Field(default=1e-5, ge=0)
    cuda_tolerance_factor: float = Field(default=10.0, ge=1)
    mistakes: list[NamedMistake] = Field(default_factory=list)


class ClassifierCheck(_Part):
    """The notebook's `name` is a trained torch.nn.Module; score its accuracy on a hidden test set."""

    name: str = Field(pattern=IDENTIFIER)
    points: float = Field(gt=0)
    # A reference function (seed, size) -> (X, y); X goes into the sandbox, y never does.
    dataset: str = Field(pattern=IDENTIFIER)
    seed: int = Field(ge=0)
    size: int = Field(default=2000, ge=10, le=1_000_000)
    classes: int = Field(default=2, ge=2)
    # No points at or below zero_at accuracy, all points at or above full_at, linear between.
    zero_at: float = Field(default=0.6, ge=0, le=1)
    full_at: float = Field(default=0.9, ge=0, le=1)
    seconds: float = Field(default=30.0, gt=0, le=600)
    batch: int = Field(default=1024, ge=1)

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> ClassifierCheck:
        if self.full_at <= self.zero_at:
            raise ValueError("full_at must be above zero_at")
        return self


class DataFile(_Part):
    # The file's name in the notebook's working directory (an .npz) ...
    file: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}\.npz$")
    # ... and the reference function (no arguments) returning its arrays by name.
    generator: str = Field(pattern=IDENTIFIER)


class NotebookConfig(GraderConfig):
    functions: list[FunctionCheck] = Field(default_factory=list)
    classifiers: list[ClassifierCheck] = Field(default_factory=list)
    data: list[DataFile] = Field(default_factory=list)
    # Limits for running the notebook's cells (each check has its own time limit on top).
    notebook_seconds: float = Field(default=120.0, gt=0, le=3600)
    memory_mb: int = Field(default=2048, ge=256, le=65536)
    max_processes: int = Field(default=64, ge=4, le=4096)
    work_dir_mb: int = Field(default=256, ge=16, le=16384)
    max_notebook_bytes: int = Field(default=5_000_000, ge=1000, le=50_000_000)
    # Mixed into every check's input seed together with the student's variant seed.
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _checks_are_named_once(self) -> NotebookConfig:
        names = [check.name for check in self.functions] + [check.name for check in self.classifiers]
        if not names:
            raise ValueError("a notebook question needs at least one check (functions or classifiers)")
        if len(set(names)) != len(names):
            raise ValueError("each checked name may appear only once")
        return self


class NotebookAnswer(GraderAnswer):
    """What the submission stores: a reference to the uploaded file (its bytes live in their own
    table); the grading service fills `content` in before grading."""

    name: str = Field(min_length=1, max_length=255)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    content: str | None = None
