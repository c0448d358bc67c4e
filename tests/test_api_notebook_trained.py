"""A trained regression model over HTTP: an assignment with a `[[questions.config.regressions]]`
check, loaded as the CLI loads one, a right and a wrong notebook uploaded and graded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest
from sqlalchemy.orm import Session, sessionmaker

from graders.sandbox import bwrap_path
from tests.conftest import ON_POSTGRES_ONLY, Api, load_material_folder
from tests.graders.notebooks import notebook_text

ASSIGNMENT_TOML = """
slug = "fit1"
title = "Fit a line"
reference_module = "reference.py"

[[questions]]
id = "q1"
kind = "notebook"
points = 3
prompt = "Upload a notebook defining a trained torch.nn.Module `regressor`."
[questions.config]
notebook_seconds = 60

[[questions.config.regressions]]
name = "regressor"
points = 3
dataset = "line_data"
seed = 5
size = 300
metric = "mae"
full_at = 0.1
zero_at = 1.0
"""

REFERENCE_PY = """
import numpy as np


def line_data(seed, size):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(size, 1))
    return x, 3 * x[:, 0] - 1
"""

TRAINED = """import torch
torch.manual_seed(0)
x = torch.rand(256, 1) * 4 - 2
y = 3 * x - 1
regressor = torch.nn.Linear(1, 1)
optimizer = torch.optim.SGD(regressor.parameters(), lr=0.1)
for _ in range(300):
    optimizer.zero_grad()
    ((regressor(x) - y) ** 2).mean().backward()
    optimizer.step()"""

CONSTANT = """import torch

class Mean(torch.nn.Module):
    def forward(self, x):
        return torch.full((len(x), 1), -1.0)

regressor = Mean()"""


def upload(api: Api, cells: list[str]) -> httpx2.Response:
    return api.upload_notebook("student", "fit1", "q1", notebook_text(cells).encode())


@pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")
@ON_POSTGRES_ONLY
def test_a_regression_check_is_graded_over_http(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    load_material_folder(
        session_factory, tmp_path, {"assignment.toml": ASSIGNMENT_TOML, "reference.py": REFERENCE_PY}
    )

    trained, constant = upload(api, [TRAINED]), upload(api, [CONSTANT])
    assert trained.status_code == constant.status_code == 202, (trained.text, constant.text)
    assert api.grade_pending() == 2

    right = api.get("student", trained.headers["location"]).json()["questions"]["q1"]
    assert (right["verdict"], right["score"], right["max_score"]) == ("correct", 3.0, 3.0)
    assert right["feedback"].startswith("regressor: 3/3 - MAE ")
    assert "on 300 hidden test examples (all points at 0.1 or less, none at 1 or more)" in right["feedback"]
    assert right["details"] is None  # staff only

    # Predicting the mean (-1) of y = 3x - 1 for x uniform on [-2, 2]: MAE = 3 E|x| = 3.
    wrong = api.get("student", constant.headers["location"]).json()["questions"]["q1"]
    assert (wrong["verdict"], wrong["score"]) == ("incorrect", 0.0)
    assert re.match(r"regressor: 0/3 - MAE (2\.9|3\.0)\d* on 300 hidden test examples", wrong["feedback"])
    details = api.get("ta", constant.headers["location"]).json()["questions"]["q1"]["details"]
    assert details["checks"]["regressor"]["status"] == "scored"
    assert 2.9 < details["checks"]["regressor"]["mae"] < 3.1
    # What the student is shown of the question: the check and its thresholds, not the dataset.
    question = api.get("student", "/api/v1/courses/demo/assignments/fit1").json()["questions"][0]
    assert question["config"]["checks"] == [
        {
            "name": "regressor",
            "points": 3.0,
            "metric": "mae",
            "zero_at": 1.0,
            "full_at": 0.1,
            "visibility": "public",
        }
    ]
    assert "line_data" not in json.dumps(question)
