"""A structured function check over HTTP: a backward pass returning (dx, dW, db), uploaded as a
notebook, graded in the sandbox, with the wrong part named to the student."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from graders.sandbox import bwrap_path
from tests.conftest import ON_POSTGRES_ONLY, Api, load_material_folder
from tests.graders.linear_layer import DW_TRANSPOSED_AND_AVERAGED, REFERENCE_SOURCE
from tests.graders.notebooks import notebook_text

ASSIGNMENT_TOML = """
slug = "linear"
title = "A linear layer"
reference_module = "reference.py"

[[questions]]
id = "backward"
kind = "notebook"
points = 3
[questions.config]
notebook_seconds = 60

[[questions.config.functions]]
name = "linear_backward"
points = 3
inputs = "backward_inputs"
reference = "linear_backward_ref"
outputs = ["dx", "dW", "db"]
part_credit = true
tolerances = { db = { rtol = 1e-4, atol = 1e-4 } }
"""


@pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")
@ON_POSTGRES_ONLY
def test_a_backward_pass_with_one_wrong_part_is_graded_part_by_part(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    load_material_folder(
        session_factory, tmp_path, {"assignment.toml": ASSIGNMENT_TOML, "reference.py": REFERENCE_SOURCE}
    )
    notebook = notebook_text([DW_TRANSPOSED_AND_AVERAGED]).encode()
    response = api.upload_notebook("student", "linear", "backward", notebook)
    assert response.status_code == 202, response.text
    assert api.grade_pending() == 1
    location = response.headers["location"]
    question = api.get("student", location).json()["questions"]["backward"]
    assert (question["verdict"], question["score"], question["max_score"]) == ("partial", 2.0, 3.0)
    assert question["feedback"].startswith(
        "linear_backward: 2/3 - dW has the wrong shape (2, 3), not (3, 2) as due; "
        "it is the transpose of the right value; dx and db are right."
    )
    assert question["details"] is None  # staff only
    details = api.get("ta", location).json()["questions"]["backward"]["details"]
    parts = details["checks"]["linear_backward"]["parts"]
    assert {name: part["status"] for name, part in parts.items()} == {
        "dx": "right",
        "dW": "shape",
        "db": "right",
    }
