"""A gradient check over HTTP: an assignment with `[[questions.config.gradients]]` is loaded, a
notebook is uploaded and graded in the sandbox, and the feedback names the wrong gradient."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from graders.sandbox import bwrap_path
from tests.conftest import ON_POSTGRES_ONLY, Api, load_material_folder
from tests.graders.notebooks import notebook_text

ASSIGNMENT = """
slug = "grad1"
title = "A linear layer's backward pass"
reference_module = "reference.py"

[[questions]]
id = "q1"
kind = "notebook"
points = 3
[questions.config]
notebook_seconds = 60

[[questions.config.gradients]]
name = "linear_backward"
points = 2
forward = "linear_forward"
inputs = "linear_inputs"
wrt = ["x", "W", "b"]
part_credit = true

[[questions.config.gradients]]
name = "tanh_backward"
points = 1
forward = "tanh_forward"
notebook_forward = "my_tanh"
inputs = "tanh_inputs"
wrt = ["x"]
"""

REFERENCE = """
import torch


def linear_forward(x, W, b):
    return x @ W + b


def linear_inputs(rng):
    return {"x": rng.standard_normal((5, 3)), "W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}


def tanh_forward(x):
    return torch.tanh(x)


def tanh_inputs(rng):
    return {"x": rng.standard_normal((2, 4))}
"""

NOTEBOOK = """
import torch

def linear_backward(dy, x, W, b):
    return dy @ W.T, dy.T @ x, dy.sum(0)  # dW transposed

def my_tanh(x):
    return torch.tanh(x)

def tanh_backward(dy, x):
    return dy * (1 - torch.tanh(x) ** 2)
"""


@pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")
@ON_POSTGRES_ONLY
def test_a_gradient_check_over_http_names_the_wrong_gradient(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    load_material_folder(
        session_factory, tmp_path, {"assignment.toml": ASSIGNMENT, "reference.py": REFERENCE}
    )
    response = api.upload_notebook("student", "grad1", "q1", notebook_text([NOTEBOOK]).encode())
    assert response.status_code == 202, response.text
    assert api.grade_pending() == 1

    q1 = api.get("student", response.headers["location"]).json()["questions"]["q1"]
    assert (q1["verdict"], q1["max_score"]) == ("partial", 3.0)
    assert q1["score"] == pytest.approx(1 + 2 * 2 / 3, abs=1e-3)
    linear_line, tanh_line = q1["feedback"].splitlines()
    assert linear_line.startswith("linear_backward: 1.33333/2 - ")
    assert "The gradient for W is wrong: it is transposed (shape (2, 3) where (3, 2) is due)" in linear_line
    assert linear_line.endswith("the gradients for x and b are right.")
    assert tanh_line == "tanh_backward: 1/1 - correct."
    assert q1["details"] is None  # staff only

    staff = api.get("ta", response.headers["location"]).json()["questions"]["q1"]["details"]["checks"]
    assert staff["linear_backward"]["gradients"]["W"]["status"] == "wrong"
    assert staff["tanh_backward"]["own_forward"]["backward_agrees_with_own_forward"] is True
