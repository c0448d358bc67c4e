"""Function checks on structured values: a linear layer's backward pass returning (dx, dW, db), or a
dict of them, compared part by part; named mistakes on parts; per-part credit; arguments changed
in place; and forged or unreadable structured results, contained."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from graders import GradingContext, Verdict, get_grader
from graders.notebook import _calls
from graders.notebook._parts import compare_parts, merge_trials
from tests.graders.linear_layer import (
    BACKWARD_CHECK,
    CHANGES_ITS_INPUT,
    DW_TRANSPOSED_AND_AVERAGED,
    GRADS_CHECK,
    HOSTILE,
    HOSTILE_NAMES,
    MEAN_FEEDBACK,
    RIGHT,
    WRONG_STRUCTURES,
    grade,
    notebook_config,
    reference_functions,
)

CONFIG = notebook_config(BACKWARD_CHECK, GRADS_CHECK)


def line_of(result: Any, name: str) -> str:
    return next(line for line in result.feedback.splitlines() if line.startswith(f"{name}: "))


def test_a_right_backward_pass_scores_full_marks() -> None:
    result = grade([RIGHT], CONFIG)
    assert result.verdict is Verdict.CORRECT, result.feedback
    assert line_of(result, "linear_backward") == "linear_backward: 3/3 - correct."
    assert line_of(result, "linear_grads") == "linear_grads: 3/3 - correct."
    parts = result.details["checks"]["linear_backward"]["parts"]
    assert {name: part["status"] for name, part in parts.items()} == dict.fromkeys(
        ["dx", "dW", "db"], "right"
    )


def test_a_wrong_part_is_named_and_the_right_ones_too() -> None:
    result = grade([DW_TRANSPOSED_AND_AVERAGED], CONFIG)
    checks = result.details["checks"]
    # All or nothing without part_credit: the transposed dW is named by its shape.
    assert checks["linear_backward"]["points"] == 0.0
    assert line_of(result, "linear_backward") == (
        "linear_backward: 0/3 - dW has the wrong shape (2, 3), not (3, 2) as due; "
        "it is the transpose of the right value; dx and db are right."
    )
    assert checks["linear_backward"]["parts"]["dW"]["status"] == "shape"
    # With part_credit, dx and db earn their shares; the averaged dW is named by its mistake.
    assert checks["linear_grads"]["points"] == pytest.approx(2.0)
    assert checks["linear_grads"]["status"] == "partial"
    line = line_of(result, "linear_grads")
    assert line.startswith("linear_grads: 2/3 - dW is wrong (shape (3, 2) as due, largest difference ")
    assert "dx and db are right." in line
    assert MEAN_FEEDBACK in line
    assert "Each right part earns 1." in line
    assert checks["linear_grads"]["parts"]["dW"]["max_abs_error"] > 0
    assert result.verdict is Verdict.PARTIAL


def test_a_wrong_structure_is_named() -> None:
    result = grade([WRONG_STRUCTURES], CONFIG)
    assert line_of(result, "linear_backward") == (
        "linear_backward: 0/3 - returned a tuple of 2 parts "
        "where a tuple of 3 parts (dx, dW and db) were due."
    )
    assert result.details["checks"]["linear_backward"]["status"] == "shape"
    # A missing key costs its own share only, with part_credit.
    line = line_of(result, "linear_grads")
    assert line.startswith(
        "linear_grads: 2/3 - db is missing (no key 'db' in the dict); dx and dW are right."
    )


def test_an_argument_changed_in_place_is_named_and_costs_the_check() -> None:
    result = grade([CHANGES_ITS_INPUT], CONFIG)
    checks = result.details["checks"]
    assert (checks["linear_backward"]["points"], checks["linear_backward"]["status"]) == (0.0, "mutated")
    assert checks["linear_backward"]["mutated"] == ["x"]
    line = line_of(result, "linear_backward")
    assert line.startswith("linear_backward: 0/3 - linear_backward changed its argument x in place (x += ...")
    assert line.endswith("Its outputs were right.")
    # The next check got fresh inputs: its x was not changed by the call before.
    assert checks["linear_grads"]["points"] == 3.0

    lenient = notebook_config(BACKWARD_CHECK | {"allow_mutation": True}, GRADS_CHECK)
    allowed = grade([CHANGES_ITS_INPUT], lenient)
    assert allowed.fraction == 1.0
    assert "changed its argument x in place" in line_of(allowed, "linear_backward")


def test_forged_and_unreadable_structured_results_earn_nothing() -> None:
    checks = [BACKWARD_CHECK | {"name": name, "mistakes": []} for name in HOSTILE_NAMES]
    result = grade([HOSTILE], notebook_config(*checks))
    details = result.details["checks"]
    assert {name: details[name]["points"] for name in HOSTILE_NAMES} == dict.fromkeys(HOSTILE_NAMES, 0.0)
    assert details["forged_layout"]["status"] in ("invalid", "error")
    assert "exactly the parts its layout names" in line_of(result, "forged_layout")
    assert details["deep_layout"]["status"] == "invalid"
    assert "nested more than" in line_of(result, "deep_layout")
    assert "compressed" in line_of(result, "compressed")
    assert line_of(result, "nan_part").startswith(
        "nan_part: 0/3 - dW holds NaN or infinite values; dx and db"
    )
    assert "more than the" in line_of(result, "huge_part")


def test_outputs_and_tolerances_must_name_the_references_parts() -> None:
    grader = get_grader("notebook")
    context = GradingContext(reference=reference_functions())
    with pytest.raises(ValueError, match="names 2 parts but the reference"):
        grader.self_check(notebook_config(BACKWARD_CHECK | {"outputs": ["dx", "dW"]}), context)
    with pytest.raises(ValueError, match="does not return: dz"):
        grader.self_check(
            notebook_config(GRADS_CHECK | {"tolerances": {"dz": {"rtol": 0, "atol": 1}}}), context
        )
    with pytest.raises(ValueError, match="only once"):
        notebook_config(BACKWARD_CHECK | {"outputs": ["dx", "dx", "db"]})
    grader.self_check(CONFIG, context)


def tolerance(_part: str) -> tuple[float, float]:
    return 1e-5, 1e-5


def test_compare_parts_nested_and_per_part_tolerance() -> None:
    want = {"out": np.ones(2), "state": (np.zeros(3), np.ones((2, 2)))}
    given = {"out": np.ones(2) + 1e-3, "state": [np.zeros(3), np.ones((2, 2))], "extra": np.zeros(1)}
    comparison = compare_parts(given, want, None, tolerance)
    assert [(part.name, part.group, part.status) for part in comparison.parts] == [
        ("out", "out", "values"),
        ("state[0]", "state", "right"),
        ("state[1]", "state", "right"),
    ]
    assert comparison.right_groups == ["state"]
    loose = compare_parts(given, want, None, lambda part: (0.0, 1e-2) if part == "out" else (1e-5, 1e-5))
    assert loose.all_right
    # A single tensor keeps the single-tensor wording.
    single = compare_parts(np.zeros(3), np.ones(3), None, tolerance)
    assert single.phrase() == "wrong values: the largest difference is 1 (atol 1e-05, rtol 1e-05)."
    assert compare_parts((np.ones(3),), np.ones(3), None, tolerance).structure == (
        "returned a tuple of 1 part, expected a tensor of shape (3,)."
    )


def test_a_part_is_right_only_if_right_in_every_trial() -> None:
    want = (np.ones(2), np.ones(2))
    first = compare_parts((np.ones(2), np.ones(2)), want, ["a", "b"], tolerance)
    second = compare_parts((np.ones(2), np.zeros(2)), want, ["a", "b"], tolerance)
    merged = merge_trials([first, second])
    assert [part.status for part in merged.parts] == ["right", "values"]
    assert merged.right_groups == ["a"]


def test_the_mutation_guard_names_what_changed() -> None:
    def in_place(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x += 1
        z.resize_(1)
        return y * 2

    arguments = {"x": torch.zeros(3), "y": torch.tensor([float("nan"), 1.0]), "z": torch.zeros(2)}
    value, mutated = _calls.call_with_mutation_guard(in_place, arguments)
    assert mutated == ("x", "z")
    assert torch.equal(value[1:], torch.tensor([2.0]))
    clean = {"a": torch.ones(2, dtype=torch.int64), "b": torch.tensor([float("nan")])}
    _, nothing = _calls.call_with_mutation_guard(lambda a, b: a + b, clean, by_keyword=True)
    assert nothing == ()
