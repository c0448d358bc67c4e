"""Module checks: the notebook's torch.nn.Module classes given the reference's parameters, compared
on the forward output and the parameter gradients (tests/graders/material/modules)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from graders import GradingContext, Verdict, get_grader
from graders.notebook import NotebookConfig, _calls, _wire
from graders.notebook._compare import Tree
from graders.notebook._modules import module_outcome
from graders.notebook._parts import compare_parts
from graders.notebook._plan import build_plan
from graders.notebook._session import CheckResult
from graders.sandbox import bwrap_path
from service.assignments.material import read_material
from service.assignments.references import load_reference_functions
from tests.graders.notebooks import answer_for, notebook_text

MODULES = Path(__file__).parent / "material" / "modules"

needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")

IMPORTS = "import torch\nfrom torch import nn"

LINEAR = """class Linear(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x):
        return x @ self.weight.T + self.bias"""

RNN_CELL = """class RNNCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.W_xh = nn.Parameter(torch.zeros(input_size, hidden_size))
        self.W_hh = nn.Parameter(torch.zeros(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x, h):
        return torch.tanh(x @ self.W_xh + h @ self.W_hh + self.b)"""

# The bias is a parameter but the forward leaves it out.
LINEAR_WITHOUT_BIAS = LINEAR.replace("x @ self.weight.T + self.bias", "x @ self.weight.T")
# The forward's value is right, but no gradient reaches W_hh.
RNN_CELL_DETACHED = RNN_CELL.replace("h @ self.W_hh", "h @ self.W_hh.detach()")

# torch.nn.Linear inside: the parameters are `inner.weight` and `inner.bias`, copied by shape.
LINEAR_WRAPPED = """class Linear(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.inner = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.inner(x)"""

# Other names, another order; and the forward doubles its argument x in place (then undoes it in
# what it computes, so the output is right).
RNN_CELL_RENAMED_MUTATING = """class RNNCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.weight_ih = nn.Parameter(torch.zeros(input_size, hidden_size))
        self.weight_hh = nn.Parameter(torch.zeros(hidden_size, hidden_size))

    def forward(self, x, h):
        x.mul_(2.0)
        return torch.tanh((x / 2.0) @ self.weight_ih + h @ self.weight_hh + self.bias)"""

RNN_CELL_WITHOUT_BIAS = """class RNNCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.W_xh = nn.Parameter(torch.zeros(input_size, hidden_size))
        self.W_hh = nn.Parameter(torch.zeros(hidden_size, hidden_size))

    def forward(self, x, h):
        return torch.tanh(x @ self.W_xh + h @ self.W_hh)"""

LINEAR_AS_FUNCTION = """def Linear(in_features, out_features):
    return lambda x: x"""


class Modules:
    def __init__(self) -> None:
        loaded = read_material(MODULES)
        reference = load_reference_functions(loaded.reference_source, loaded.content_hash)
        question = loaded.material.questions[0]
        self.raw_config = question.config
        config = get_grader("notebook").parse_config(question.config)
        assert isinstance(config, NotebookConfig)
        self.config = config
        self.context = GradingContext(variant_seed=777, reference=reference)

    def grade(self, *cells: str) -> Any:
        content = notebook_text([IMPORTS, *cells])
        return get_grader("notebook").grade_raw_answer(self.config, answer_for(content), self.context)


@pytest.fixture(scope="module")
def modules() -> Modules:
    return Modules()


def line_of(result: Any, name: str) -> str:
    return next(line for line in result.feedback.splitlines() if line.startswith(f"{name}: "))


def test_the_reference_module_exposes_its_classes(modules: Modules) -> None:
    assert {"ReferenceLinear", "ReferenceRNNCell", "rnn_cell_inputs"} <= set(modules.context.reference)


@needs_bwrap
def test_correct_modules_score_full_marks(modules: Modules) -> None:
    result = modules.grade(LINEAR, RNN_CELL)
    assert result.verdict is Verdict.CORRECT, result.feedback
    checks = result.details["checks"]
    assert (checks["Linear"]["points"], checks["RNNCell"]["points"]) == (1.0, 2.0)
    assert checks["RNNCell"]["parameters"] == checks["RNNCell"]["reference_parameters"] == 32
    assert line_of(result, "RNNCell") == (
        "RNNCell: 2/2 - the forward output is right; the parameter gradients are right."
    )


@needs_bwrap
def test_a_wrong_forward_and_a_wrong_gradient_are_named(modules: Modules) -> None:
    result = modules.grade(LINEAR_WITHOUT_BIAS, RNN_CELL_DETACHED)
    assert result.verdict is Verdict.PARTIAL
    checks = result.details["checks"]
    # Without the bias neither the output nor the bias's gradient is right.
    assert checks["Linear"]["points"] == 0.0
    linear = line_of(result, "Linear")
    assert linear.startswith(
        "Linear: 0/1 - the forward output is wrong (shape (5, 2) as due, largest difference "
    )
    assert "the gradient of bias is wrong" in linear
    assert "the gradient of weight" not in linear
    # The detached W_hh: the forward's half of the points, and the gradient named.
    assert checks["RNNCell"]["points"] == 1.0
    rnn = line_of(result, "RNNCell")
    assert rnn.startswith(
        "RNNCell: 1/2 - the forward output is right; the gradient of W_hh is wrong (shape (4, 4) as due, "
        "largest difference "
    )
    assert "W_xh" not in rnn
    assert [entry["part"] for entry in checks["RNNCell"]["gradients"]] == ["W_hh"]


@needs_bwrap
def test_parameters_of_other_names_are_copied_by_shape_and_mutation_is_named(modules: Modules) -> None:
    result = modules.grade(LINEAR_WRAPPED, RNN_CELL_RENAMED_MUTATING)
    checks = result.details["checks"]
    assert checks["Linear"]["points"] == 1.0, result.feedback
    # Copied by shape, the outputs and gradients are right; the forward's `x.mul_` costs the check
    # its points, as a function check's would (docs/authoring.md, "Arguments changed in place").
    rnn = line_of(result, "RNNCell")
    assert rnn.startswith("RNNCell: 0/2 - RNNCell.forward changed its argument x in place (")
    assert rnn.endswith("The forward output is right; the parameter gradients are right.")
    assert (checks["RNNCell"]["status"], checks["RNNCell"]["mutated"]) == ("mutated", ["x"])
    assert "in place" not in line_of(result, "Linear")
    raw = modules.raw_config
    lenient = get_grader("notebook").parse_config(
        raw | {"modules": [check | {"allow_mutation": True} for check in raw["modules"]]}
    )
    content = notebook_text([IMPORTS, LINEAR_WRAPPED, RNN_CELL_RENAMED_MUTATING])
    allowed = get_grader("notebook").grade_raw_answer(lenient, answer_for(content), modules.context)
    assert allowed.fraction == 1.0, allowed.feedback
    assert "RNNCell.forward changed its argument x in place" in line_of(allowed, "RNNCell")


@needs_bwrap
def test_a_missing_parameter_and_a_class_that_is_no_module_get_clear_messages(modules: Modules) -> None:
    result = modules.grade(LINEAR_AS_FUNCTION, RNN_CELL_WITHOUT_BIAS)
    assert result.fraction == 0.0
    assert line_of(result, "Linear") == "Linear: 0/1 - Linear is a function, not a torch.nn.Module subclass."
    rnn = line_of(result, "RNNCell")
    assert rnn.startswith("RNNCell: 0/2 - RNNCell's parameters do not fit the reference's")
    assert "RNNCell has 28 parameters, the reference 32" in rnn
    assert "the reference has W_xh (3, 4), W_hh (4, 4), b (4,); RNNCell has W_xh (3, 4), W_hh (4, 4)" in rnn


# --- The outcome from records, without a sandbox: structure, forged and hostile results.


def record(value: dict[str, Any]) -> CheckResult:
    """An `ok` result as the runner writes a structured one (`_wire.py`), for a dict of parts."""
    leaves: dict[str, np.ndarray[Any, Any]] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {"dict": [[key, walk(child)] for key, child in node.items()]}
        if isinstance(node, tuple | list):
            return {"tuple": [walk(child) for child in node]}
        leaves[f"p{len(leaves)}"] = np.asarray(node, dtype=np.float64)
        return f"p{len(leaves) - 1}"

    layout = walk(value)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **leaves)
    return CheckResult("ok", payload=buffer.getvalue(), layout=layout)


def outcome_of(modules: Modules, make: Any) -> Any:
    """The RNNCell check's outcome when every trial returns make(trial's expected values)."""
    check = next(check for check in modules.config.modules if check.name == "RNNCell")
    plan = build_plan(modules.config, modules.context, "cpu")
    results = {}
    for trial in range(check.trials):
        expected = plan.modules[f"RNNCell#{trial}"]
        results[f"RNNCell#{trial}"] = make(expected)
    return module_outcome(check, plan.modules, results, modules.context, "an exit (0)")


def test_the_reference_values_returned_earn_full_marks(modules: Modules) -> None:
    outcome = outcome_of(
        modules,
        lambda want: record({"output": want.output, "gradients": want.gradients, "parameters": 32}),
    )
    assert outcome.points == 2.0, outcome.line


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"output": np.zeros((2, 4))}, "not the runner's record of a module"),
        ({"output": np.zeros((2, 4)), "gradients": np.zeros(3), "parameters": 32}, "not the runner's record"),
        ({"output": np.zeros((2, 4)), "gradients": {}, "parameters": [1, 2]}, "not the runner's record"),
    ],
)
def test_a_forged_record_earns_nothing(modules: Modules, value: dict[str, Any], message: str) -> None:
    outcome = outcome_of(modules, lambda _want: record(value))
    assert outcome.points == 0.0
    assert message in outcome.line


def test_nan_and_a_wrong_shape_and_skipped_gradients_are_named(modules: Modules) -> None:
    def nan_output(want: Any) -> CheckResult:
        return record({"output": np.full((2, 4), np.nan), "gradients": want.gradients, "parameters": 32})

    outcome = outcome_of(modules, nan_output)
    assert outcome.points == 1.0
    assert (
        "the forward output holds NaN or infinite values; the parameter gradients are right" in outcome.line
    )

    outcome = outcome_of(
        modules, lambda _want: record({"output": np.zeros((4, 2)), "gradients": {}, "parameters": 28})
    )
    assert outcome.points == 0.0
    assert "the forward output has the wrong shape (4, 2), not (2, 4) as due" in outcome.line
    assert "the gradients were not compared" in outcome.line
    assert outcome.line.endswith("RNNCell has 28 parameters, the reference 32.")


def test_structured_outputs_are_compared_part_by_part() -> None:
    want: Tree = (np.ones(3), {"c": np.zeros(2), "n": np.ones((1,))})
    got: Tree = (np.ones(3), {"c": np.ones(2)})

    def tolerance(_part: str) -> tuple[float, float]:
        return 1e-5, 1e-5

    wrong = compare_parts(got, want, ["h", "state"], tolerance).wrong_parts
    assert [(part.name, part.reason) for part in wrong] == [
        ("state.c", "is wrong (shape (2,) as due, largest difference 1, atol 1e-05, rtol 1e-05)"),
        ("state.n", "is missing (no key 'n' in the dict)"),
    ]
    short = compare_parts((np.ones(3),), want, None, tolerance)
    assert short.structure == "returned a tuple of 1 part where a tuple of 2 parts were due."


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_the_runner_builds_the_module_on_the_worker_s_device(
    modules: Modules, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's call for a module check, outside a sandbox: the module, its copied parameters,
    the arguments and the loss weights all on the worker's device; the outcome full marks."""
    monkeypatch.setattr(_calls, "WIRE", _wire)
    context = GradingContext(variant_seed=777, reference=modules.context.reference, device=device)
    plan = build_plan(modules.config, context, device)
    namespace: dict[str, Any] = {}
    exec(f"{IMPORTS}\n{RNN_CELL}", namespace)  # noqa: S102  (the test's own notebook code)
    results = {}
    for entry in plan.entries:
        if entry["name"] == "RNNCell":
            inputs = dict(np.load(io.BytesIO(plan.files[entry["inputs"]]), allow_pickle=False))
            made = _calls.call_module(entry, namespace, inputs, device, 0)
            results[entry["id"]] = CheckResult("ok", payload=made.payload, layout=made.layout)
    check = next(check for check in modules.config.modules if check.name == "RNNCell")
    outcome = module_outcome(check, plan.modules, results, context, "an exit (0)")
    assert outcome.points == 2.0, outcome.line
