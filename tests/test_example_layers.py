"""The second example assignment, reference/layers: its material, its reference, the demo course
that holds it beside hw5, and its solution notebook graded over HTTP (full marks), with one wrong
notebook per check kind losing that check's points."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from graders import get_grader
from graders.notebook import NotebookConfig
from graders.sandbox import bwrap_path
from service.assignments.material import LoadedMaterial, read_material
from service.assignments.references import load_reference_functions
from service.demo import DEMO_ASSIGNMENT_FOLDERS, LAYERS_ASSIGNMENT_FOLDER
from tests.conftest import ON_POSTGRES_ONLY, Api
from tests.graders.notebooks import notebook_text

SOLUTION = LAYERS_ASSIGNMENT_FOLDER / "solution.ipynb"
SUBMISSIONS = "/api/v1/courses/demo/assignments/layers/submissions"
# Every check of q3 and its points, in the order they run and are reported.
CHECK_POINTS = {
    "linear_forward": 1.0,
    "linear_backward": 2.0,
    "MyLinear": 1.0,
    "RNNCell": 2.0,
    "rnn_cell_backward": 2.0,
    "regressor": 2.0,
}
RIGHT_ANSWERS = {"q1": {"choices": [2]}, "q2": {"expression": "(w*x + b - y)*x"}}
needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")


def layers_material() -> LoadedMaterial:
    return read_material(LAYERS_ASSIGNMENT_FOLDER)


def reference() -> Any:
    material = layers_material()
    return load_reference_functions(material.reference_source, material.content_hash)


def notebook_config(material: LoadedMaterial) -> NotebookConfig:
    question = next(q for q in material.material.questions if q.id == "q3")
    config = get_grader("notebook").parse_config(question.config)
    assert isinstance(config, NotebookConfig)
    return config


def test_the_material_loads_and_every_check_names_what_the_reference_defines() -> None:
    material = layers_material()
    assert material.material.slug == "layers"
    questions = {q.id: (q.kind, q.points) for q in material.material.questions}
    assert questions == {"q1": ("choice", 1), "q2": ("expression", 1), "q3": ("notebook", 10)}
    config = notebook_config(material)
    assert {check.name: check.points for check in config.checks} == CHECK_POINTS
    assert sum(CHECK_POINTS.values()) == 10  # the checks share out the question's points

    backward = next(check for check in config.functions if check.name == "linear_backward")
    assert (backward.outputs, backward.part_credit, backward.visibility) == (
        ["dx", "dW", "db"],
        True,
        "hidden",
    )
    cell = next(check for check in config.modules if check.name == "RNNCell")
    assert (cell.init, cell.reference, cell.inputs, cell.backward) == (
        {"input_size": 3, "hidden_size": 4},
        "ReferenceRNNCell",
        "rnn_cell_inputs",
        True,
    )
    (gradient,) = config.gradients
    assert gradient.wrt == ["x", "h", "W_xh", "W_hh", "b"]
    (regression,) = config.regressions
    assert (regression.metric, regression.zero_at, regression.full_at) == ("mse", 0.5, 0.05)

    # Every name the checks look up exists in the reference module, classes included.
    functions = reference()
    named = [data.generator for data in config.data]
    for check in config.functions:
        named += [check.reference, check.inputs, *(mistake.reference for mistake in check.mistakes)]
    named += [name for check in config.modules for name in (check.reference, check.inputs)]
    named += [name for check in config.gradients for name in (check.forward, check.inputs)]
    named += [check.dataset for check in config.regressions]
    assert [name for name in named if name not in functions] == []
    assert issubclass(functions["ReferenceRNNCell"], torch.nn.Module)


def test_a_reference_module_exposes_the_public_classes_it_defines_not_imported_ones() -> None:
    source = (
        "from torch.nn import Linear\n"
        "import torch\n"
        "class ReferenceCell(torch.nn.Module):\n    pass\n"
        "class _Helper:\n    pass\n"
        "def cell_inputs(rng):\n    return {}\n"
    )
    functions = load_reference_functions(source, "0" * 64)
    assert sorted(functions) == ["ReferenceCell", "cell_inputs"]


def torch_inputs(arrays: dict[str, Any], dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    return [torch.tensor(np.asarray(value), dtype=dtype, requires_grad=True) for value in arrays.values()]


def test_the_linear_references_agree_with_autograd() -> None:
    functions = reference()
    for seed in range(5):
        arrays = functions["backward_inputs"](np.random.default_rng(seed))
        assert list(arrays) == ["dy", "x", "W"]
        dy, x, weight = torch_inputs(arrays)
        bias = torch.zeros(weight.shape[1], dtype=torch.float64, requires_grad=True)
        y = functions["linear_forward_ref"](x, weight, bias)
        want = torch.autograd.grad(y, (x, weight, bias), dy.detach())
        got = functions["linear_backward_ref"](dy.detach(), x.detach(), weight.detach())
        for name, expected, actual in zip(("dx", "dW", "db"), want, got, strict=True):
            assert torch.allclose(expected, actual), name
        # The named mistake is told apart from the right answer: dW of another shape.
        _, wrong_dw, _ = functions["linear_backward_transposed"](dy.detach(), x.detach(), weight.detach())
        assert wrong_dw.shape == got[1].T.shape
    linear = functions["ReferenceLinear"](in_features=4, out_features=3)
    (x,) = torch_inputs(functions["linear_module_inputs"](np.random.default_rng(0)), torch.float32)
    assert torch.allclose(linear(x), x @ linear.weight + linear.bias)


def test_the_rnn_cell_reference_has_the_shapes_due_and_its_forward_is_the_module() -> None:
    functions = reference()
    cell = functions["ReferenceRNNCell"](input_size=3, hidden_size=4)
    assert {name: tuple(p.shape) for name, p in cell.named_parameters()} == {
        "W_xh": (3, 4),
        "W_hh": (4, 4),
        "b": (4,),
    }
    inputs = functions["rnn_cell_inputs"](np.random.default_rng(1))
    assert list(inputs) == ["x", "h"]
    x, h = (torch.tensor(value) for value in inputs.values())
    output = cell(x=x, h=h)
    assert output.shape == (x.shape[0], 4)
    assert torch.all(output.abs() < 1)  # a tanh
    arrays = functions["rnn_cell_backward_inputs"](np.random.default_rng(2))
    assert list(arrays) == ["x", "h", "W_xh", "W_hh", "b"]
    leaves = torch_inputs(arrays)
    forward = functions["rnn_cell_forward_ref"](*leaves)
    assert forward.dtype == torch.float64
    assert forward.shape == (arrays["x"].shape[0], arrays["b"].shape[0])


def test_the_shipped_training_file_is_the_generator_s_and_the_hidden_set_differs() -> None:
    functions = reference()
    with np.load(LAYERS_ASSIGNMENT_FOLDER / "data" / "train.npz", allow_pickle=False) as shipped:
        generated = functions["training_set"]()
        assert set(shipped.files) == set(generated) == {"X", "y"}
        for name in generated:
            assert np.array_equal(shipped[name], generated[name]), name
    features, targets = functions["regression_set"](7_310_552, 1000)
    assert (features.shape, targets.shape) == ((1000, 4), (1000,))
    assert not np.array_equal(features, generated["X"][:1000])
    # The thresholds leave room on both sides: the best constant guess (the mean) scores no points,
    # the noise-free function all of them.
    (regression,) = notebook_config(layers_material()).regressions
    assert targets.var() > 2 * regression.zero_at
    noise_free = np.sin(features[:, 0]) + features[:, 1] * features[:, 2] / 2 - features[:, 3] / 2
    assert np.mean((noise_free - targets) ** 2) < regression.full_at / 2


def test_the_expression_reference_is_the_chain_rule() -> None:
    point = reference()["dloss_dw_point"]
    for seed in range(3):
        symbols, expected = point(np.random.default_rng(seed), {})
        x, w, b, y = (symbols[name] for name in ("x", "w", "b", "y"))
        assert expected == pytest.approx((w * x + b - y) * x)


def test_the_demo_course_holds_hw5_and_layers(api: Api) -> None:
    assert [folder.name for folder in DEMO_ASSIGNMENT_FOLDERS] == ["hw5", "layers"]
    for slug in ("hw5", "layers"):
        response = api.get("student", f"/api/v1/courses/demo/assignments/{slug}")
        assert response.status_code == 200, response.text
    layers = api.get("student", "/api/v1/courses/demo/assignments/layers").json()
    assert (layers["version"], layers["max_score"]) == (1, 12.0)
    assert [question["id"] for question in layers["questions"]] == ["q1", "q2", "q3"]


# --- the solution and wrong notebooks, graded through the HTTP API ------------------------------


def solution_cells() -> list[str]:
    notebook = json.loads(SOLUTION.read_text(encoding="utf-8"))
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def replacing(cells: list[str], starts_with: str, source: str) -> list[str]:
    """The cells with the one starting with `starts_with` replaced by `source`."""
    replaced = [source if cell.lstrip().startswith(starts_with) else cell for cell in cells]
    assert replaced != cells, f"no cell starts with {starts_with}"
    return replaced


def submit(api: Api, answers: dict[str, Any], notebook: bytes) -> str:
    response = api.client.post(
        SUBMISSIONS,
        data={"answers": json.dumps(answers)},
        files={"q3": ("layers.ipynb", notebook)},
        headers=api.accounts.header("student"),
    )
    assert response.status_code == 202, response.text
    return str(response.headers["location"])


def graded_q3(api: Api, location: str) -> tuple[dict[str, Any], dict[str, float]]:
    """q3 as staff see it, and each check's points from its details."""
    result = api.get("ta", location).json()
    assert result["status"] == "graded", result
    q3 = result["questions"]["q3"]
    return q3, {name: check["points"] for name, check in q3["details"]["checks"].items()}


@needs_bwrap
@ON_POSTGRES_ONLY
def test_the_solution_notebook_scores_full_marks_over_http(api: Api) -> None:
    location = submit(api, RIGHT_ANSWERS, SOLUTION.read_bytes())
    assert api.grade_pending() == 1
    q3, points = graded_q3(api, location)
    assert points == CHECK_POINTS, q3["feedback"]
    assert (q3["verdict"], q3["score"], q3["max_score"]) == ("correct", 10.0, 10.0)
    lines = q3["feedback"].splitlines()
    assert [line.split(":")[0] for line in lines] == list(CHECK_POINTS)
    result = api.get("ta", location).json()
    assert {key: question["verdict"] for key, question in result["questions"].items()} == {
        "q1": "correct",
        "q2": "correct",
        "q3": "correct",
    }
    assert result["score"] == 12.0

    # linear_backward is hidden: before the release the student sees the public checks' lines, not
    # its result.
    student_feedback = api.get("student", location).json()["questions"]["q3"]["feedback"] or ""
    assert lines[0] in student_feedback
    assert lines[1].startswith("linear_backward: 2/2")
    assert lines[1] not in student_feedback


TANH_FREE_BACKWARD = """def rnn_cell_backward(dh_next, x, h, W_xh, W_hh, b):
    dz = dh_next  # forgot tanh'
    return dz @ W_xh.T, dz @ W_hh.T, x.T @ dz, h.T @ dz, dz.sum(dim=0)"""
RELU_CELL = """class RNNCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.W_xh = nn.Parameter(torch.randn(input_size, hidden_size))
        self.W_hh = nn.Parameter(torch.randn(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x, h):
        return torch.relu(x @ self.W_xh + h @ self.W_hh + self.b)"""
UNTRAINED_REGRESSOR = "regressor = nn.Sequential(MyLinear(4, 32), nn.Tanh(), MyLinear(32, 1), nn.Flatten(0))"
# Per check kind: the cell replaced, its wrong source, the check that loses points, the points it
# keeps and what its feedback line must say.
WRONG_NOTEBOOKS = {
    "function": (
        "def linear_forward(",
        "def linear_forward(x, W, b):\n    return x @ W",
        "linear_forward",
        0.0,
        "wrong",
    ),
    "structured function": (
        "def linear_backward(",
        "def linear_backward(dy, x, W):\n    return dy @ W.T, dy.T @ x, dy.sum(dim=0)",
        "linear_backward",
        2.0 * 2 / 3,  # part credit: dx and db right, dW wrong
        "dW",
    ),
    "module": ("class RNNCell(", RELU_CELL, "RNNCell", 0.0, "output"),
    "gradient": ("def rnn_cell_backward(", TANH_FREE_BACKWARD, "rnn_cell_backward", 0.0, "W_xh"),
    "regression": ("data = np.load(", UNTRAINED_REGRESSOR, "regressor", 0.0, "MSE"),
}


@needs_bwrap
@ON_POSTGRES_ONLY
@pytest.mark.parametrize("kind", list(WRONG_NOTEBOOKS))
def test_a_wrong_notebook_loses_that_check_s_points_and_the_feedback_names_it(api: Api, kind: str) -> None:
    starts_with, source, check, kept, said = WRONG_NOTEBOOKS[kind]
    notebook = notebook_text(replacing(solution_cells(), starts_with, source)).encode()
    location = submit(api, {}, notebook)
    assert api.grade_pending() == 1
    q3, points = graded_q3(api, location)
    assert points == CHECK_POINTS | {check: pytest.approx(kept)}, q3["feedback"]
    assert q3["verdict"] == "partial"
    line = next(line for line in q3["feedback"].splitlines() if line.startswith(f"{check}:"))
    assert f"/{CHECK_POINTS[check]:g} - " in line, line
    assert said.lower() in line.lower(), line
