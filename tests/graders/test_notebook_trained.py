"""Trained regression and sequence models, scored on hidden targets that never enter the sandbox."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from graders import GradingContext, Verdict, get_grader
from graders.notebook import NotebookConfig, _calls
from graders.notebook._compare import threshold_points
from graders.notebook._plan import CALLS_FILE, PLAN_FILE, WIRE_FILE, build_plan, npz_bytes
from graders.notebook._session import CheckResult
from graders.notebook._trained import mean_cross_entropy, regression_outcome, sequence_outcome
from graders.notebook.config import MAX_SEQUENCE_OUTPUT_VALUES, RegressionCheck, SequenceCheck
from graders.sandbox import bwrap_path
from tests.graders.notebooks import answer_for, notebook_text

VOCABULARY = 8
STEPS = 6
WEIGHTS = np.array([1.5, -2.0, 0.5])


def linear_data(seed: int, size: int) -> tuple[Any, Any]:
    """y = x . (1.5, -2, 0.5) + 0.3 with a little noise: a linear layer fits it to MSE ~0.0025."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(size, 3))
    return features, features @ WEIGHTS + 0.3 + rng.normal(scale=0.05, size=size)


def token_data(seed: int, size: int) -> tuple[Any, Any]:
    """Each token's target is (3 t + 1) mod 8: an embedding and a linear layer learn it per token."""
    tokens = np.random.default_rng(seed).integers(0, VOCABULARY, size=(size, STEPS))
    return tokens, (3 * tokens + 1) % VOCABULARY


REFERENCE = {"linear_data": linear_data, "token_data": token_data}
CONTEXT = GradingContext(variant_seed=7, reference=REFERENCE)

REGRESSION = {"dataset": "linear_data", "seed": 11, "size": 200, "points": 2, "full_at": 0.01, "zero_at": 1.0}
ACCURACY = {"dataset": "token_data", "seed": 12, "size": 100, "points": 2, "vocabulary": VOCABULARY}
SEQUENCES = [
    {"name": "lm", **ACCURACY, "zero_at": 0.2, "full_at": 0.95},
    {"name": "lm_again", **ACCURACY, "metric": "perplexity", "zero_at": 8.0, "full_at": 1.2},
]


def config(*extra_regressions: str) -> NotebookConfig:
    regressions = [{"name": name, **REGRESSION} for name in ("regressor", *extra_regressions)]
    parsed = get_grader("notebook").parse_config(
        {"notebook_seconds": 60, "regressions": regressions, "sequences": SEQUENCES}
    )
    assert isinstance(parsed, NotebookConfig)
    return parsed


def grade(cells: list[str], question: NotebookConfig) -> Any:
    return get_grader("notebook").grade_raw_answer(question, answer_for(notebook_text(cells)), CONTEXT)


TRAINED = [
    """import torch
torch.manual_seed(0)
X = torch.randn(512, 3)
y = X @ torch.tensor([1.5, -2.0, 0.5]) + 0.3
regressor = torch.nn.Linear(3, 1)  # answers (N, 1) for targets of shape (N,)
optimizer = torch.optim.SGD(regressor.parameters(), lr=0.1)
for _ in range(200):
    optimizer.zero_grad()
    ((regressor(X).squeeze(1) - y) ** 2).mean().backward()
    optimizer.step()""",
    """lm = torch.nn.Sequential(torch.nn.Embedding(8, 16), torch.nn.Linear(16, 8))
optimizer = torch.optim.Adam(lm.parameters(), lr=0.05)
for _ in range(200):
    tokens = torch.randint(0, 8, (64, 6))
    loss = torch.nn.functional.cross_entropy(lm(tokens).reshape(-1, 8), ((3 * tokens + 1) % 8).reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
lm_again = lm""",
]

WRONG = [
    """import torch

class Zeros(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(len(x))

class FirstTwo(torch.nn.Module):
    def forward(self, x):
        return x[:, :2]

class Repeated(torch.nn.Module):
    def forward(self, x):
        return x.repeat(1, 30)

class VocabularyFirst(torch.nn.Module):  # one-hot needs int64 tokens: they come in as such
    def forward(self, tokens):
        return torch.nn.functional.one_hot((3 * tokens + 1) % 8, 8).float().transpose(1, 2)

class NaNs(torch.nn.Module):
    def forward(self, tokens):
        return torch.full((*tokens.shape, 8), float("nan"))

regressor, regressor_pair, regressor_wide = Zeros(), FirstTwo(), Repeated()
lm, lm_again = VocabularyFirst(), NaNs()""",
]

needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")


@needs_bwrap
def test_trained_regression_and_sequence_models_score_full_marks() -> None:
    result = grade(TRAINED, config())
    assert result.verdict is Verdict.CORRECT, result.feedback
    checks = result.details["checks"]
    assert {name: check["points"] for name, check in checks.items()} == {
        "regressor": 2.0,
        "lm": 2.0,
        "lm_again": 2.0,
    }
    assert checks["regressor"]["mse"] < 0.01
    assert checks["lm"]["accuracy"] == 1.0
    assert 1.0 <= checks["lm_again"]["perplexity"] < 1.2
    lines = result.feedback.splitlines()
    assert lines[0].startswith("regressor: 2/2 - MSE ")
    assert "on 200 hidden test examples" in lines[0]
    assert lines[1].startswith(
        "lm: 2/2 - per-token accuracy 100.0% on 600 tokens of 100 hidden test sequences"
    )
    assert re.match(r"lm_again: 2/2 - perplexity 1\.\d{3} on 600 tokens", lines[2]), lines[2]


@needs_bwrap
def test_wrong_models_earn_nothing_and_the_feedback_names_why() -> None:
    result = grade(WRONG, config("regressor_pair", "regressor_wide"))
    assert result.fraction == 0.0
    checks = result.details["checks"]
    lines = {line.split(":")[0]: line for line in result.feedback.splitlines()}
    # Zeros are a prediction: scored, and the MSE (the targets' mean square, ~7) is named.
    assert checks["regressor"]["status"] == "scored"
    assert checks["regressor"]["mse"] > 5
    assert re.match(r"regressor: 0/2 - MSE [5-9]\.\d+ on 200 hidden test examples", lines["regressor"])
    assert "none at 1 or more" in lines["regressor"]
    assert lines["regressor_pair"] == (
        "regressor_pair: 0/2 - the model returned shape (200, 2), not (200,) or (200, 1) like the targets."
    )
    # More values than any plausible prediction: refused inside, before they cross the pipe.
    assert checks["regressor_wide"]["status"] == "error"
    assert "more than the" in lines["regressor_wide"]
    assert lines["lm"].startswith(
        "lm: 0/2 - the model returned shape (100, 8, 6), not (batch, time, vocabulary)"
    )
    assert "logits.transpose(1, 2)" in lines["lm"]
    assert lines["lm_again"] == "lm_again: 0/2 - the model's outputs hold NaN or infinite values."


def test_only_the_features_enter_the_sandbox() -> None:
    plan = build_plan(config(), CONTEXT, "cpu")
    features, targets = linear_data(11, 200)
    tokens, next_tokens = token_data(12, 100)
    sandbox_files = {
        name: data for name, data in plan.files.items() if name not in {WIRE_FILE, CALLS_FILE, PLAN_FILE}
    }
    assert sorted(sandbox_files) == ["lm-features.npz", "lm_again-features.npz", "regressor-features.npz"]
    for name, data in sandbox_files.items():
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            assert archive.files == ["X"], name
            want = features if name.startswith("regressor") else tokens
            np.testing.assert_allclose(archive["X"], want, rtol=1e-6)
        for hidden in (targets, targets.astype(np.float32), next_tokens.astype(np.int64)):
            assert hidden.tobytes() not in data, name
    np.testing.assert_array_equal(plan.targets["regressor"], targets)
    np.testing.assert_array_equal(plan.labels["lm"], next_tokens)
    entries = {entry["id"]: entry for entry in plan.entries}
    assert entries["regressor"]["kind"] == "regression"
    assert entries["lm"]["kind"] == "sequence"
    # Exactly the logits due come back (N x T x vocabulary), so a transposed output still does.
    assert entries["lm"]["max_elements"] == 100 * STEPS * VOCABULARY


def result_of(array: Any) -> CheckResult:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return CheckResult("ok", payload=buffer.getvalue())


def test_regression_outcomes_from_forged_or_extreme_results() -> None:
    check = RegressionCheck(name="m", points=2, dataset="d", seed=0, size=10, full_at=0.1, zero_at=1.1)
    targets = np.arange(10.0)
    half_way = regression_outcome(check, targets, {"m": result_of((targets + math.sqrt(0.6))[:, None])}, "")
    assert half_way.points == pytest.approx(1.0)
    assert half_way.details["mse"] == pytest.approx(0.6)
    huge = regression_outcome(check, targets, {"m": result_of(np.full(10, 1e200))}, "")
    assert huge.line == "m: 0/2 - the model's outputs are too large: their MSE overflows float64."
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    pickled = CheckResult("ok", payload=objects.getvalue())  # never unpickled
    assert regression_outcome(check, targets, {"m": pickled}, "").details["status"] == "error"
    forged_structure = CheckResult("ok", payload=npz_bytes({"p0": targets}), layout={"tuple": ["p0"]})
    structure = regression_outcome(check, targets, {"m": forged_structure}, "")
    assert structure.line == "m: 0/2 - the model returned a structure, not one tensor of predictions."
    mae = check.model_copy(update={"metric": "mae"})
    assert regression_outcome(mae, targets, {"m": result_of(targets + 0.6)}, "").details[
        "mae"
    ] == pytest.approx(0.6)


def test_perplexity_is_stable_and_agrees_with_torch() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, size=(3, 4))
    for scale in (1.0, 1e4):  # exp(1e4) overflows: a naive softmax would give NaN
        logits = rng.normal(scale=scale, size=(3, 4, 5))
        want = torch.nn.functional.cross_entropy(
            torch.as_tensor(logits).reshape(-1, 5), torch.as_tensor(targets).reshape(-1)
        )
        assert mean_cross_entropy(logits, targets) == pytest.approx(float(want), rel=1e-9)
    check = SequenceCheck(
        name="m",
        points=1,
        dataset="d",
        seed=0,
        size=10,  # the dataset's size; the outcome goes by the targets' shape
        vocabulary=5,
        metric="perplexity",
        zero_at=5,
        full_at=1,
    )
    extreme = np.zeros((3, 4, 5))
    extreme[..., 0], extreme[..., 1] = 1e308, -1e308  # finite, but their differences overflow
    outcome = sequence_outcome(check, np.ones((3, 4), dtype=np.int64), {"m": result_of(extreme)}, "")
    assert outcome.points == 0.0
    assert math.isfinite(outcome.details["perplexity"])  # type: ignore[arg-type]
    flattened = sequence_outcome(check, targets, {"m": result_of(np.zeros((12, 5)))}, "")
    assert "flattened into the batch" in flattened.line


def test_one_linear_scale_for_every_trained_model() -> None:
    assert threshold_points(0.75, zero_at=0.6, full_at=0.9, points=4) == pytest.approx(2.0)  # accuracy
    assert threshold_points(0.95, zero_at=0.6, full_at=0.9, points=4) == 4.0
    assert threshold_points(0.3, zero_at=0.5, full_at=0.1, points=4) == pytest.approx(2.0)  # an error
    assert threshold_points(0.7, zero_at=0.5, full_at=0.1, points=4) == 0.0
    assert threshold_points(0.05, zero_at=0.5, full_at=0.1, points=4) == 4.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 1000, "vocabulary": 10_000}, "exceeds the 8000000 logits"),
        ({"zero_at": 0.2, "full_at": 1.5}, "at most 1"),
        ({"metric": "perplexity", "zero_at": 8.0, "full_at": 0.5}, "at least 1"),
        ({"metric": "perplexity", "zero_at": 1.2, "full_at": 8.0}, "full_at must be the better end"),
    ],
)
def test_sequence_configs_out_of_bounds_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SequenceCheck.model_validate({"name": "lm", **ACCURACY, "zero_at": 0.2, "full_at": 0.95} | changes)


def long_sequences(seed: int, size: int) -> tuple[Any, Any]:
    tokens = np.zeros((size, MAX_SEQUENCE_OUTPUT_VALUES // (size * VOCABULARY) + 1), dtype=np.int64)
    return tokens, tokens


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (lambda seed, size: (np.zeros((size, 3), dtype=np.int64), np.full((size, 3), 8)), "targets in 0..7"),
        (lambda seed, size: (np.zeros((size, 3), dtype=np.int64), np.zeros((size, 4), dtype=int)), "shape"),
        (lambda seed, size: (np.zeros((size, 3)), np.zeros((size, 3), dtype=int)), "integer tokens"),
        (long_sequences, "more than the 8000000"),
    ],
)
def test_sequence_datasets_that_do_not_fit_fail_the_self_check(dataset: Any, message: str) -> None:
    question = get_grader("notebook").parse_config(
        {"sequences": [{"name": "lm", **ACCURACY, "zero_at": 0.2, "full_at": 0.9}]}
    )
    with pytest.raises(ValueError, match=message):
        get_grader("notebook").self_check(question, GradingContext(reference={"token_data": dataset}))


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (lambda seed, size: (np.zeros((size, 3)), np.zeros((size, 2, 2))), r"shape \(200,\) or \(200, k\)"),
        (lambda seed, size: (np.zeros((size - 1, 3)), np.zeros(size)), "200 numeric feature rows"),
        (lambda seed, size: (np.zeros((size, 3)), np.full(size, np.nan)), "NaN or infinite"),
    ],
)
def test_regression_datasets_that_do_not_fit_fail_the_self_check(dataset: Any, message: str) -> None:
    question = get_grader("notebook").parse_config({"regressions": [{"name": "regressor", **REGRESSION}]})
    with pytest.raises(ValueError, match=message):
        get_grader("notebook").self_check(question, GradingContext(reference={"linear_data": dataset}))
    assert "linear_data" in get_grader("notebook").reference_names(question)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize(("kind", "dtype"), [("regression", np.float32), ("sequence", np.int64)])
def test_a_model_left_on_the_cpu_is_run_on_the_worker_s_device(kind: str, dtype: Any, device: str) -> None:
    """The runner moves the module to the device of its batches: a notebook that trained on the
    CPU is checked on a GPU worker without a device mismatch."""
    torch.manual_seed(0)
    if kind == "sequence":
        model: torch.nn.Module = torch.nn.Sequential(torch.nn.Embedding(VOCABULARY, 4), torch.nn.Linear(4, 8))
        features = np.random.default_rng(0).integers(0, VOCABULARY, size=(10, STEPS))
    else:
        model = torch.nn.Linear(3, 1)
        features = np.random.default_rng(0).normal(size=(10, 3))
    features = features.astype(dtype)
    expected = model(torch.as_tensor(features)).detach().numpy()
    entry = {"id": "m", "name": "m", "kind": kind, "batch": 4, "max_elements": 10_000}
    result = _calls.call_trained_model(entry, {"m": model}, {"X": features}, device, 0)
    outputs = np.load(io.BytesIO(result.payload), allow_pickle=False)
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-5)
