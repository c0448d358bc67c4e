"""The graders package is a library: its public names are pinned, its registry is closed."""

from __future__ import annotations

import pytest

import graders
from graders import (
    GradeResult,
    GraderKind,
    GradingContext,
    Verdict,
    derive_variant_seed,
    get_grader,
    known_kinds,
)
from graders.manual import ManualConfig, ManualGrader


def test_public_api_is_pinned() -> None:
    assert sorted(graders.__all__) == [
        "GradeResult",
        "Grader",
        "GraderAnswer",
        "GraderConfig",
        "GraderKind",
        "GradingContext",
        "JSONValue",
        "PublicView",
        "ReferenceFunctions",
        "SupportsPreview",
        "SupportsVariants",
        "Verdict",
        "derive_variant_seed",
        "get_grader",
        "json_nesting_depth",
        "known_kinds",
        "storable_details",
    ]


def test_registry_is_closed() -> None:
    assert {kind.value for kind in known_kinds()} == {"choice", "tensor", "manual", "expression", "notebook"}
    assert get_grader("choice").kind is GraderKind.CHOICE
    for name in ("os.system", "graders.choice.ChoiceGrader", "builtins.eval", ""):
        with pytest.raises(KeyError, match="known kinds: choice, expression, manual, notebook, tensor"):
            get_grader(name)


def test_grade_result_keeps_fractions_in_range() -> None:
    with pytest.raises(ValueError, match="fraction"):
        GradeResult(Verdict.CORRECT, 1.5, "")
    assert GradeResult.from_fraction(0.25, "").verdict is Verdict.PARTIAL


def test_variant_seeds_are_keyed_by_the_secret() -> None:
    seed = derive_variant_seed("s1", "hw5", "q3_3", "7")
    assert seed == derive_variant_seed("s1", "hw5", "q3_3", "7")
    assert seed != derive_variant_seed("s2", "hw5", "q3_3", "7")
    assert seed != derive_variant_seed("s1", "hw5", "q3_3", "8")
    assert seed != derive_variant_seed("s1", "hw5", "q3_1", "7")


def test_manual_answers_wait_for_a_ta() -> None:
    grader = ManualGrader()
    config = ManualConfig(max_length=10)
    pending = grader.grade_raw_answer(config, {"text": "gradients"}, GradingContext())
    assert (pending.verdict, pending.fraction) == (Verdict.PENDING_MANUAL, 0.0)
    assert grader.grade_raw_answer(config, {"text": "   "}, GradingContext()).verdict is Verdict.INVALID
    assert grader.grade_raw_answer(config, {"text": "x" * 11}, GradingContext()).verdict is Verdict.INVALID
    assert grader.public_config(config) == {"max_length": 10}
