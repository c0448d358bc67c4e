"""Gradient checks: a notebook's hand-written backward against autograd of the reference forward,
in float64, each gradient named by its argument and the mistake named where it is recognisable."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from graders import GradeResult, GradingContext, Verdict, get_grader
from graders.notebook import NotebookConfig
from graders.notebook._gradients import gradient_outcome, reference_gradients
from graders.notebook._session import CheckResult
from graders.notebook.config import GradientCheck
from tests.graders.notebooks import answer_for, notebook_text


def linear_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: N803
    return x @ W + b


def linear_inputs(rng: np.random.Generator) -> dict[str, Any]:
    # W is not square, so a transposed dW has the wrong shape.
    return {"x": rng.standard_normal((4, 3)), "W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}


def tanh_forward(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x)


def tanh_inputs(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.standard_normal((3, 3))}


def constant_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: N803
    return x @ W  # does not depend on b


def pair_forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x, 2 * x


CONTEXT = GradingContext(
    variant_seed=7,
    reference={
        "linear_forward": linear_forward,
        "linear_inputs": linear_inputs,
        "tanh_forward": tanh_forward,
        "tanh_inputs": tanh_inputs,
        "constant_forward": constant_forward,
        "pair_forward": pair_forward,
    },
)

STUDENT = """
import torch

def linear_backward(dy, x, W, b):
    return dy @ W.T, x.T @ dy, dy.sum(0)

def tanh_backward(dy, x):
    return dy * (1 - torch.tanh(x) ** 2)

def my_forward(x, W, b):
    return x @ W + b

def checked_with_my_forward(dy, x, W, b):
    return dy @ W.T, x.T @ dy, dy.sum(0)

def sign_flipped(dy, x, W, b):
    return -(dy @ W.T), x.T @ dy, dy.sum(0)

def transposed(dy, x, W, b):
    return dy @ W.T, dy.T @ x, dy.sum(0)

def doubled(dy, x, W, b):
    return dy @ W.T, 2 * x.T @ dy, dy.sum(0)

doubled_with_part_credit = doubled

def two_gradients(dy, x, W, b):
    return dy @ W.T, x.T @ dy

def ignores_dy(dy, x, W, b):
    return dy @ W.T, x.T @ dy, torch.ones_like(dy).sum(0)

def unsummed(dy, x, W, b):
    return dy @ W.T, x.T @ dy, dy

def tanh_wrong(dy, x):
    return dy * (1 - torch.tanh(x))

def nan_gradient(dy, x, W, b):
    return dy @ W.T * float("nan"), x.T @ dy, dy.sum(0)

def huge_gradient(dy, x, W, b):
    return torch.zeros(10**6), x.T @ dy, dy.sum(0)

def my_wrong_forward(x, W, b):
    return x @ W - b

def consistent_with_my_wrong_forward(dy, x, W, b):
    return dy @ W.T, x.T @ dy, -dy.sum(0)

def blamed_backward(dy, x, W, b):
    return -(dy @ W.T), x.T @ dy, dy.sum(0)

def scales_dy_in_place(dy, x, W, b):
    dy.mul_(2.0)
    return dy @ W.T / 2, x.T @ dy / 2, dy.sum(0) / 2
"""


def linear(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "points": 1, "forward": "linear_forward", "inputs": "linear_inputs",
            "wrt": ["x", "W", "b"], **extra}  # fmt: skip


def tanh(name: str) -> dict[str, Any]:
    return {"name": name, "points": 1, "forward": "tanh_forward", "inputs": "tanh_inputs", "wrt": ["x"]}


def config(*checks: dict[str, Any]) -> NotebookConfig:
    parsed = get_grader("notebook").parse_config({"notebook_seconds": 60, "gradients": list(checks)})
    assert isinstance(parsed, NotebookConfig)
    return parsed


def grade(checked: NotebookConfig) -> GradeResult:
    grader = get_grader("notebook")
    grader.self_check(checked, CONTEXT)
    return grader.grade_raw_answer(checked, answer_for(notebook_text([STUDENT])), CONTEXT)


def line_of(result: GradeResult, name: str) -> str:
    return next(line for line in result.feedback.splitlines() if line.startswith(f"{name}: "))


def test_a_right_backward_scores_full_marks() -> None:
    result = grade(
        config(
            linear("linear_backward"),
            tanh("tanh_backward"),
            linear("checked_with_my_forward", notebook_forward="my_forward"),
        )
    )
    assert result.verdict is Verdict.CORRECT, result.feedback
    assert result.fraction == 1.0
    assert line_of(result, "linear_backward") == "linear_backward: 1/1 - correct."
    own = result.details["checks"]["checked_with_my_forward"]["own_forward"]
    assert own == {
        "available": True,
        "backward_agrees_with_own_forward": True,
        "own_forward_agrees_with_reference": True,
    }


@pytest.fixture(scope="module")
def wrong() -> GradeResult:
    """One run of the notebook, grading each wrong backward as its own check."""
    return grade(
        config(
            linear("sign_flipped"),
            linear("transposed"),
            linear("doubled"),
            linear("doubled_with_part_credit", part_credit=True),
            linear("two_gradients"),
            linear("ignores_dy"),
            linear("unsummed"),
            tanh("tanh_wrong"),
            linear("nan_gradient"),
            linear("huge_gradient"),
            linear("consistent_with_my_wrong_forward", notebook_forward="my_wrong_forward"),
            linear("blamed_backward", notebook_forward="my_forward"),
            linear("linear_backward", notebook_forward="my_wrong_forward"),
            linear("scales_dy_in_place"),
        )
    )


@pytest.mark.parametrize(
    ("name", "named"),
    [
        (
            "sign_flipped",
            "the gradient for x is wrong: its sign is flipped; the gradients for W and b are right.",
        ),
        ("transposed", "the gradient for W is wrong: it is transposed (shape (2, 3) where (3, 2) is due)"),
        (
            "doubled",
            "the gradient for W is wrong: it is off by a constant factor (2 times the right gradient)",
        ),
        (
            "ignores_dy",
            "the gradient for b is wrong: it is the gradient for an upstream gradient of all ones",
        ),
        (
            "unsummed",
            "the gradient for b is wrong: it is not summed over axis 0 (shape (4, 2) where (2,) is due)",
        ),
        ("tanh_wrong", "the gradient for x is wrong (shape (3, 3) as due, largest difference "),
        ("nan_gradient", "the gradient for x holds NaN or infinite values"),
    ],
)
def test_a_wrong_gradient_is_named_with_its_mistake(wrong: GradeResult, name: str, named: str) -> None:
    line = line_of(wrong, name)
    assert line.startswith(f"{name}: 0/1 - ")
    assert named.lower() in line.lower()
    assert wrong.details["checks"][name]["points"] == 0.0


def test_part_credit_gives_each_right_gradient_its_share(wrong: GradeResult) -> None:
    check = wrong.details["checks"]["doubled_with_part_credit"]
    assert check["points"] == pytest.approx(2 / 3)
    assert check["gradients"]["W"]["status"] == "wrong"
    assert check["gradients"]["x"] == {"status": "correct", "message": None, "max_abs_error": 0.0}


def test_the_wrong_number_of_gradients_is_named(wrong: GradeResult) -> None:
    expected = "returned a tuple of 2 parts, expected 3 gradients (for x, W and b, in that order)."
    assert line_of(wrong, "two_gradients") == f"two_gradients: 0/1 - {expected}"


def test_a_result_over_its_size_bound_is_refused(wrong: GradeResult) -> None:
    line = line_of(wrong, "huge_gradient")
    assert line.startswith("huge_gradient: 0/1 - ")
    assert "returned 1000000 values, more than the" in line


def test_a_backward_consistent_with_a_wrong_own_forward_still_earns_nothing(wrong: GradeResult) -> None:
    line = line_of(wrong, "consistent_with_my_wrong_forward")
    assert line.startswith("consistent_with_my_wrong_forward: 0/1 - ")
    assert "The gradient for b is wrong: its sign is flipped" in line
    assert "matches autograd through your own my_wrong_forward, but not the reference" in line
    own = wrong.details["checks"]["consistent_with_my_wrong_forward"]["own_forward"]
    assert own["backward_agrees_with_own_forward"] is True
    assert own["own_forward_agrees_with_reference"] is False


def test_a_wrong_backward_beside_a_right_own_forward_is_blamed_on_the_backward(wrong: GradeResult) -> None:
    assert "gives the right gradients: the backward is at fault" in line_of(wrong, "blamed_backward")


def test_a_right_backward_keeps_its_points_whatever_the_own_forward_says(wrong: GradeResult) -> None:
    line = line_of(wrong, "linear_backward")
    assert line.startswith("linear_backward: 1/1 - correct.")
    assert "(Autograd through your my_wrong_forward differs: check it.)" in line


def test_the_wrong_answers_earn_only_the_part_credit(wrong: GradeResult) -> None:
    assert wrong.verdict is Verdict.PARTIAL
    earned = sum(check["points"] for check in wrong.details["checks"].values())
    assert earned == pytest.approx(1 + 2 / 3)


def test_reference_gradients_are_float64_autograd_of_the_forward() -> None:
    check = GradientCheck.model_validate(linear("linear_backward"))
    trial = reference_gradients(check, CONTEXT, np.random.default_rng(0))
    x, W, dy = trial.inputs["x"], trial.inputs["W"], trial.upstream  # noqa: N806
    assert dy.dtype == np.float64
    assert dy.shape == (4, 2)
    np.testing.assert_allclose(trial.gradients[0], dy @ W.T)
    np.testing.assert_allclose(trial.gradients[1], x.T @ dy)
    np.testing.assert_allclose(trial.gradients[2], dy.sum(0))
    np.testing.assert_allclose(trial.ones_gradients[2], [4.0, 4.0])


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (linear("g") | {"wrt": ["x", "V"]}, "wrt names 'V', which is not among the arguments"),
        (linear("g") | {"forward": "constant_forward"}, "does not depend on 'b'"),
        (tanh("g") | {"forward": "pair_forward"}, "must return one floating tensor"),
    ],
)
def test_self_check_refuses_a_gradient_check_that_cannot_work(check: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_grader("notebook").self_check(config(check), CONTEXT)


def test_wrt_names_each_argument_once() -> None:
    with pytest.raises(ValidationError, match="only once"):
        GradientCheck.model_validate(linear("g") | {"wrt": ["x", "x"]})


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def forged_outcome(result: CheckResult) -> str:
    check = GradientCheck.model_validate(linear("g", trials=1))
    trial = reference_gradients(check, CONTEXT, np.random.default_rng(0))
    return gradient_outcome(check, [trial], {"g#0": result}, "an exit").line


def test_a_forged_result_is_refused_without_points() -> None:
    # One bare tensor where the runner always sends {"backward": ...}.
    assert "could not be read" in forged_outcome(CheckResult("ok", payload=npy(np.zeros((3, 2)))))
    # A layout naming parts that the archive does not hold.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("p0.npy", npy(np.zeros(2)))
    layout = {"dict": [["backward", {"tuple": ["p0", "p1", "p2"]}]]}
    line = forged_outcome(CheckResult("ok", payload=archive.getvalue(), layout=layout))
    assert line.startswith("g: 0/1 - the result could not be read as a tensor")


def test_the_reference_names_and_public_config_cover_gradient_checks() -> None:
    grader = get_grader("notebook")
    checked = config(linear("linear_backward", notebook_forward="my_forward"))
    # The notebook's own forward is the student's, not a reference name.
    assert set(grader.reference_names(checked)) == {"linear_forward", "linear_inputs"}
    public = grader.public_config(checked)["checks"]
    assert public == [
        {
            "name": "linear_backward",
            "points": 1.0,
            "seconds": 10.0,
            "wrt": ["x", "W", "b"],
            "visibility": "public",
        }
    ]


def test_a_backward_that_changes_dy_in_place_earns_nothing(wrong: GradeResult) -> None:
    line = line_of(wrong, "scales_dy_in_place")
    assert line.startswith("scales_dy_in_place: 0/1 - scales_dy_in_place changed its argument dy in place (")
    assert line.endswith("Correct.")
    check = wrong.details["checks"]["scales_dy_in_place"]
    assert (check["status"], check["mutated"]) == ("mutated", ["dy"])


def test_allow_mutation_scores_a_mutating_backward_on_its_gradients() -> None:
    check = GradientCheck.model_validate(linear("g", trials=1))
    trial = reference_gradients(check, CONTEXT, np.random.default_rng(0))
    archive = io.BytesIO()
    np.savez(archive, p0=trial.gradients[0], p1=trial.gradients[1], p2=trial.gradients[2])
    layout = {"dict": [["backward", {"tuple": ["p0", "p1", "p2"]}]]}
    # The runner names dy by the inputs file's member; a name the check did not pass is ignored.
    mutated = ("upstream_gradient", "x", "not_an_argument")
    result = CheckResult("ok", payload=archive.getvalue(), layout=layout, mutated=mutated)
    strict = gradient_outcome(check, [trial], {"g#0": result}, "an exit")
    assert strict.points == 0.0
    assert strict.line.startswith("g: 0/1 - g changed its arguments dy and x in place (")
    lenient = check.model_copy(update={"allow_mutation": True})
    allowed = gradient_outcome(lenient, [trial], {"g#0": result}, "an exit")
    assert allowed.points == 1.0
    assert allowed.details["mutated"] == ["dy", "x"]
