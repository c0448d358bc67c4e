from __future__ import annotations

from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from graders._grader import GraderAnswer, GraderConfig

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
# `public`: the check's result and feedback are shown to the student at once; `hidden`: only
# once the assignment's hidden results are released (docs/authoring.md says when).
Visibility: TypeAlias = Literal["public", "hidden"]
# A keyword argument of a module's constructor, as TOML writes it.
InitValue: TypeAlias = bool | int | float | str | list[int] | list[float]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tolerance(_Part):
    rtol: float = Field(ge=0)
    atol: float = Field(ge=0)


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
    # A tuple's or list's parts by name, in order (used in feedback: "dW is wrong"); a dict's parts
    # are named by their keys. None: the reference returns one tensor, or the parts are numbered.
    outputs: list[str] | None = Field(default=None, min_length=1, max_length=64)
    # A part's own tolerance, by its name (the check's rtol/atol for the others).
    tolerances: dict[str, Tolerance] = Field(default_factory=dict)
    # Whether each right part earns its share of the points (else all parts must be right).
    part_credit: bool = False
    # Whether a call that changes an argument in place (`x += 1`) may still earn points; it is
    # named in the feedback either way.
    allow_mutation: bool = False
    visibility: Visibility = "public"

    @model_validator(mode="after")
    def _parts_named_once(self) -> FunctionCheck:
        if self.outputs is not None and len(set(self.outputs)) != len(self.outputs):
            raise ValueError("each name in `outputs` may appear only once")
        if self.outputs is not None and (unknown := sorted(set(self.tolerances) - set(self.outputs))):
            raise ValueError(f"`tolerances` names parts that `outputs` does not: {', '.join(unknown)}")
        return self


class ModuleCheck(_Part):
    """The notebook's torch.nn.Module subclass `name`, built with `init`, given the reference
    module's parameters, compared on the forward outputs (and parameter gradients) for `inputs`."""

    name: str = Field(pattern=IDENTIFIER)
    points: float = Field(gt=0)
    # Keyword arguments of both classes' constructors.
    init: dict[str, InitValue] = Field(default_factory=dict)
    # A torch.nn.Module subclass in the reference module.
    reference: str = Field(pattern=IDENTIFIER)
    # A reference function (rng) -> dict of the forward's keyword arguments (arrays).
    inputs: str = Field(pattern=IDENTIFIER)
    # Also compare the parameters' gradients after a backward pass of a fixed loss.
    backward: bool = False
    trials: int = Field(default=2, ge=1, le=10)
    seconds: float = Field(default=10.0, gt=0, le=600)
    rtol: float = Field(default=1e-5, ge=0)
    atol: float = Field(default=1e-5, ge=0)
    cuda_tolerance_factor: float = Field(default=10.0, ge=1)
    # Names of the forward output's parts, as for a function check.
    outputs: list[str] | None = Field(default=None, min_length=1, max_length=64)
    # Whether a forward that changes an argument in place may still earn points (as for a function check).
    allow_mutation: bool = False
    visibility: Visibility = "public"


class GradientCheck(_Part):
    """The notebook's hand-written backward function `name`, called as
    `name(upstream, *forward arguments)`, against torch.autograd of `forward` in float64."""

    name: str = Field(pattern=IDENTIFIER)
    points: float = Field(gt=0)
    # The forward function: a reference function (the score is always anchored on it) ...
    forward: str = Field(pattern=IDENTIFIER)
    # ... and, optionally, the notebook's own forward, also differentiated in the sandbox: the
    # feedback then says whether the backward agrees with the student's own forward.
    notebook_forward: str | None = Field(default=None, pattern=IDENTIFIER)
    # A reference function (rng) -> ordered dict of the forward's arguments (arrays).
    inputs: str = Field(pattern=IDENTIFIER)
    # The arguments the backward returns gradients for, in the order it returns them.
    wrt: list[str] = Field(min_length=1, max_length=16)
    trials: int = Field(default=3, ge=1, le=10)
    seconds: float = Field(default=10.0, gt=0, le=600)
    rtol: float = Field(default=1e-6, ge=0)
    atol: float = Field(default=1e-8, ge=0)
    # Whether each right gradient earns its share of the points (else all must be right).
    part_credit: bool = False
    # Whether a backward that changes an argument (dy included) in place may still earn points.
    allow_mutation: bool = False
    visibility: Visibility = "public"

    @model_validator(mode="after")
    def _distinct_gradients(self) -> GradientCheck:
        if len(set(self.wrt)) != len(self.wrt):
            raise ValueError("each argument may appear in wrt only once")
        return self


class _TrainedModelCheck(_Part):
    """A trained module scored on a hidden test set: features enter the sandbox, targets do not."""

    name: str = Field(pattern=IDENTIFIER)
    points: float = Field(gt=0)
    # A reference function (seed, size) -> (X, y).
    dataset: str = Field(pattern=IDENTIFIER)
    seed: int = Field(ge=0)
    size: int = Field(default=2000, ge=10, le=1_000_000)
    seconds: float = Field(default=30.0, gt=0, le=600)
    batch: int = Field(default=1024, ge=1)
    visibility: Visibility = "public"


class RegressionCheck(_TrainedModelCheck):
    """Scored by MSE or MAE: all points at or below `full_at`, none at or above `zero_at`."""

    metric: Literal["mse", "mae"] = "mse"
    zero_at: float = Field(gt=0)
    full_at: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> RegressionCheck:
        if self.full_at >= self.zero_at:
            raise ValueError("full_at must be below zero_at (a lower error is better)")
        return self


# The most logits a sequence check's model may return (sequences x time steps x vocabulary): they
# cross the result pipe as float64 (64 MB at this cap) and are held a few times over on both sides
# of it (the batches and the record inside, the array and the log-softmax outside).
MAX_SEQUENCE_OUTPUT_VALUES = 8_000_000


class SequenceCheck(_TrainedModelCheck):
    """A model returning (batch, time, vocabulary) logits for token sequences, scored by per-token
    accuracy (higher is better) or perplexity (lower is better), between `zero_at` and `full_at`."""

    metric: Literal["accuracy", "perplexity"] = "accuracy"
    vocabulary: int = Field(ge=2, le=100_000)
    zero_at: float = Field(ge=0)
    full_at: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> SequenceCheck:
        better_is_higher = self.metric == "accuracy"
        if (self.full_at <= self.zero_at) if better_is_higher else (self.full_at >= self.zero_at):
            raise ValueError(
                "full_at must be the better end: above zero_at for accuracy, below for perplexity"
            )
        if better_is_higher and self.full_at > 1:
            raise ValueError("an accuracy's full_at is a fraction: at most 1")
        if not better_is_higher and self.full_at < 1:
            raise ValueError("a perplexity is at least 1: full_at below 1 could never be reached")
        return self

    @model_validator(mode="after")
    def _bounded_output(self) -> SequenceCheck:
        # One time step is the least a sequence has; the dataset's own length is checked when the
        # assignment is loaded (the grader's self_check builds the plan, which bounds it again).
        if self.size * self.vocabulary > MAX_SEQUENCE_OUTPUT_VALUES:
            raise ValueError(
                f"size x vocabulary ({self.size} x {self.vocabulary}) exceeds the "
                f"{MAX_SEQUENCE_OUTPUT_VALUES} logits a sequence check may return"
            )
        return self


class ClassifierCheck(_TrainedModelCheck):
    """The notebook's `name` is a trained torch.nn.Module; score its accuracy on a hidden test set."""

    classes: int = Field(default=2, ge=2)
    # No points at or below zero_at accuracy, all points at or above full_at, linear between.
    zero_at: float = Field(default=0.6, ge=0, le=1)
    full_at: float = Field(default=0.9, ge=0, le=1)

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


AnyCheck: TypeAlias = (
    FunctionCheck | ModuleCheck | GradientCheck | ClassifierCheck | RegressionCheck | SequenceCheck
)


class NotebookConfig(GraderConfig):
    functions: list[FunctionCheck] = Field(default_factory=list)
    modules: list[ModuleCheck] = Field(default_factory=list)
    gradients: list[GradientCheck] = Field(default_factory=list)
    classifiers: list[ClassifierCheck] = Field(default_factory=list)
    regressions: list[RegressionCheck] = Field(default_factory=list)
    sequences: list[SequenceCheck] = Field(default_factory=list)
    data: list[DataFile] = Field(default_factory=list)
    # Limits for running the notebook's cells (each check has its own time limit on top).
    notebook_seconds: float = Field(default=120.0, gt=0, le=3600)
    memory_mb: int = Field(default=2048, ge=256, le=65536)
    max_processes: int = Field(default=64, ge=4, le=4096)
    work_dir_mb: int = Field(default=256, ge=16, le=16384)
    max_notebook_bytes: int = Field(default=5_000_000, ge=1000, le=50_000_000)
    # Mixed into every check's input seed together with the student's variant seed.
    seed: int = Field(default=0, ge=0)

    @property
    def checks(self) -> list[AnyCheck]:
        """Every check, in the order they run and are reported."""
        return [
            *self.functions,
            *self.modules,
            *self.gradients,
            *self.classifiers,
            *self.regressions,
            *self.sequences,
        ]

    @model_validator(mode="after")
    def _checks_are_named_once(self) -> NotebookConfig:
        names = [check.name for check in self.checks]
        if not names:
            raise ValueError(
                "a notebook question needs at least one check "
                "(functions, modules, gradients, classifiers, regressions or sequences)"
            )
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
