"""Public and hidden checks in the notebook grader: the public view of a result holds only what the
public checks earned and said, and the hidden checks' count and points."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from graders import GradeResult, GradingContext, PublicView, Verdict, get_grader
from graders.notebook import NotebookConfig
from graders.sandbox import bwrap_path
from tests.graders.notebooks import answer_for, notebook_text

needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")


def scale_reference(x: torch.Tensor) -> torch.Tensor:
    return 3 * x


def shift_reference(x: torch.Tensor) -> torch.Tensor:
    return x + 1


def vector_inputs(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.normal(size=(4,)).astype(np.float32)}


REFERENCE = {"scale_ref": scale_reference, "shift_ref": shift_reference, "vector_inputs": vector_inputs}
RIGHT = "import torch\ndef scale(x):\n    return 3 * x\ndef shift(x):\n    return x + 1\n"
# `shift` is wrong: a student with only the public view must not learn it.
WRONG_SHIFT = "import torch\ndef scale(x):\n    return 3 * x\ndef shift(x):\n    return x - 1\n"
WRONG_SCALE = "import torch\ndef scale(x):\n    return 2 * x\ndef shift(x):\n    return x + 1\n"


def config(shift_visibility: str = "hidden", scale_visibility: str = "public") -> NotebookConfig:
    raw = {
        "notebook_seconds": 60,
        "functions": [
            {"name": "scale", "points": 1, "reference": "scale_ref", "inputs": "vector_inputs",
             "visibility": scale_visibility},
            {"name": "shift", "points": 3, "reference": "shift_ref", "inputs": "vector_inputs",
             "visibility": shift_visibility},
        ],
    }  # fmt: skip
    parsed = get_grader("notebook").parse_config(raw)
    assert isinstance(parsed, NotebookConfig)
    return parsed


def grade(source: str, checks: NotebookConfig) -> GradeResult:
    context = GradingContext(variant_seed=7, reference=REFERENCE)
    return get_grader("notebook").grade_raw_answer(checks, answer_for(notebook_text([source])), context)


@needs_bwrap
def test_the_public_view_holds_only_the_public_checks() -> None:
    result = grade(WRONG_SHIFT, config())
    # The full result (staff) holds both checks ...
    assert result.verdict is Verdict.PARTIAL
    assert result.fraction == pytest.approx(0.25)
    assert "shift: 0/3" in result.feedback
    # ... the public view only the public one, and the hidden checks' count and points.
    view = result.public_view
    assert view is not None
    assert (view.fraction, view.max_fraction) == (pytest.approx(0.25), pytest.approx(0.25))
    lines = view.feedback.splitlines()
    assert lines[0].startswith("scale: 1/1")
    assert lines[1:] == [
        "1 hidden check (3 points) is graded too; its result is shown when the grades are released."
    ]
    assert "shift" not in view.feedback

    # The hidden check's result does not move the public view.
    right = grade(RIGHT, config())
    assert right.verdict is Verdict.CORRECT
    assert right.public_view == view


@needs_bwrap
def test_a_wrong_public_check_shows_in_the_public_view() -> None:
    view = grade(WRONG_SCALE, config()).public_view
    assert view is not None
    assert (view.fraction, view.max_fraction) == (0.0, pytest.approx(0.25))
    assert view.feedback.splitlines()[0].startswith("scale: 0/1 - wrong values")


@needs_bwrap
def test_with_every_check_public_there_is_no_public_view() -> None:
    assert grade(WRONG_SHIFT, config(shift_visibility="public")).public_view is None


@needs_bwrap
def test_with_every_check_hidden_the_public_view_shows_no_score() -> None:
    view = grade(RIGHT, config(scale_visibility="hidden")).public_view
    assert view == PublicView(
        0.0,
        0.0,
        "2 hidden checks (4 points) are graded too; their results are shown when the grades are released.",
    )


def test_a_notebook_refused_before_any_check_has_no_public_view() -> None:
    context = GradingContext(variant_seed=7, reference=REFERENCE)
    result = get_grader("notebook").grade_raw_answer(config(), answer_for("not a notebook"), context)
    assert result.verdict is Verdict.INVALID
    assert result.public_view is None


def test_the_public_configuration_names_hidden_checks_without_their_details() -> None:
    checks = get_grader("notebook").public_config(config())["checks"]
    assert checks == [
        {"name": "scale", "points": 1.0, "seconds": 10.0, "visibility": "public"},
        {"name": "shift", "points": 3.0, "visibility": "hidden"},
    ]


def test_a_public_view_cannot_claim_more_than_its_share() -> None:
    with pytest.raises(ValueError, match="exceeds the public share"):
        PublicView(0.5, 0.25, "")
    with pytest.raises(ValueError, match="fraction"):
        PublicView(float("nan"), 0.25, "")
    assert PublicView(0.1, 0.2, "a\x00b").feedback == "ab"
