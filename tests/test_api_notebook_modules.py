"""A module check over HTTP: an assignment whose notebook question checks torch.nn.Module classes."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from graders.sandbox import bwrap_path
from tests.conftest import ON_POSTGRES_ONLY, Api, load_material_folder
from tests.graders.notebooks import notebook_text
from tests.graders.test_notebook_modules import IMPORTS, LINEAR, MODULES, RNN_CELL_DETACHED


@pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")
@ON_POSTGRES_ONLY
def test_a_module_notebook_is_graded_per_check_over_http(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    load_material_folder(session_factory, MODULES)
    notebook = notebook_text([IMPORTS, LINEAR, RNN_CELL_DETACHED]).encode()
    response = api.upload_notebook("student", "modules", "layers", notebook)
    assert response.status_code == 202, response.text
    assert api.grade_pending() == 1

    result = api.get("student", response.headers["location"]).json()
    question = result["questions"]["layers"]
    assert (question["verdict"], question["score"], question["max_score"]) == ("partial", 2.0, 3.0)
    linear, rnn = question["feedback"].splitlines()
    assert linear == "Linear: 1/1 - the forward output is right; the parameter gradients are right."
    assert rnn.startswith("RNNCell: 1/2 - the forward output is right; the gradient of W_hh is wrong")
    assert question["details"] is None  # staff only

    details = api.get("ta", response.headers["location"]).json()["questions"]["layers"]["details"]
    assert details["checks"]["RNNCell"]["gradients"][0]["part"] == "W_hh"
    assert details["checks"]["RNNCell"]["reference_parameters"] == 32
