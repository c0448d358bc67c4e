"""Stage 0 of notebook grading, outside the sandbox: what one run needs, generated from seeds.

The data files, each check's inputs, the expected outputs of the reference and the hidden labels
of the trained-model checks (a classifier's labels, a regression's targets, a sequence model's
target tokens); only the files (inputs, features, the plan and the runner's wire format) enter
the sandbox, the expected outputs and the labels stay in the grading process.
"""

from __future__ import annotations

import io
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from graders._context import GradingContext
from graders.notebook._compare import Tree, as_tree, torch_arguments, tree_size
from graders.notebook._gradients import UPSTREAM, GradientTrial, reference_gradients
from graders.notebook._modules import ModuleTrial, module_result_elements, module_trial
from graders.notebook.config import (
    MAX_SEQUENCE_OUTPUT_VALUES,
    ClassifierCheck,
    FunctionCheck,
    GradientCheck,
    ModuleCheck,
    NotebookConfig,
    RegressionCheck,
    SequenceCheck,
)
from graders.sandbox import SandboxLimits

# The runner's names for its input files (it cannot import these: see _runner.py); it loads its
# wire format from WIRE_FILE and each kind of check's call from CALLS_FILE.
WIRE_MODULE = Path(__file__).with_name("_wire.py")
WIRE_FILE = "wire.py"
CALLS_MODULE = Path(__file__).with_name("_calls.py")
CALLS_FILE = "calls.py"
PLAN_FILE = "plan.json"
NOTEBOOK_FILE = "notebook.ipynb"
# Time to start the interpreter and import torch inside the sandbox, on top of the notebook's own.
STARTUP_SECONDS = 20.0
# CPU time against wall time: a run may use more CPU than wall time (a check's child beside the
# runner polling it, threads of student code); the wall clock stays the limit that matters.
CPU_SECONDS_PER_WALL_SECOND = 2
FLOAT64_BYTES = 8
MIB = 1024**2
# A function check's result may hold this many times the expected values (plus a few), so a wrong
# shape (a transposed or broadcast result) still comes back and the feedback can name it.
WRONG_SHAPE_FACTOR = 4
WRONG_SHAPE_EXTRA_ELEMENTS = 16
# A classifier's output may have this many columns, whatever its classes: a model returning its
# input (or a hidden layer) still comes back, so the feedback can name the wrong shape.
MIN_CLASSIFIER_COLUMNS = 64
# The same room for a regression model's output, whatever its targets' columns.
MIN_REGRESSION_COLUMNS = 64
# A result pipe's room beyond the array's values: the record header and the .npy header.
RESULT_OVERHEAD_BYTES = 65536
# The control stream carries progress lines (one per cell, each at most 64 KB, see
# graders/sandbox/_run.py) ...
CONTROL_STREAM_BYTES = 16 * MIB
# ... plus, per check, what its result was allowed when results came over this stream too. They
# have pipes of their own now; the term is kept so the run's control budget is what it was.
CONTROL_STREAM_CHECK_OVERHEAD_BYTES = 4096


@dataclass
class Plan:
    files: dict[str, bytes]
    # What the runner is told of each check (the checks of plan.json, in order).
    entries: list[dict[str, Any]]
    # Per function check and trial: the inputs (kept to evaluate named mistakes) and the expected output.
    expected: dict[str, tuple[dict[str, Any], Tree]]
    # A classifier's labels (N,) and a sequence check's target tokens (N, T), by check name.
    labels: dict[str, npt.NDArray[np.int64]]
    # Per module check and trial: the reference module's output, gradients and parameter count.
    modules: dict[str, ModuleTrial] = field(default_factory=dict)
    # Per gradient check, its trials: the point, dy and the reference's gradients (see _gradients.py).
    gradients: dict[str, list[GradientTrial]] = field(default_factory=dict)
    # A regression check's targets, (N,) or (N, k), by check name.
    targets: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)


def build_plan(config: NotebookConfig, context: GradingContext, device: str) -> Plan:
    plan = Plan({WIRE_FILE: WIRE_MODULE.read_bytes(), CALLS_FILE: CALLS_MODULE.read_bytes()}, [], {}, {})
    for data in config.data:
        plan.files[data.file] = npz_bytes(context.reference_function(data.generator)())
    for check in config.functions:
        for trial in range(check.trials):
            _add_function_trial(plan, config, check, trial, context)
    for module in config.modules:
        for trial in range(module.trials):
            _add_module_trial(plan, config, module, trial, context)
    for gradient in config.gradients:
        _add_gradient_check(plan, config, gradient, context)
    for classifier in config.classifiers:
        _add_classifier(plan, classifier, context)
    for regression in config.regressions:
        _add_regression(plan, regression, context)
    for sequence in config.sequences:
        _add_sequence(plan, sequence, context)
    runner_plan = {
        "device": device,
        "seed": config.seed,
        "data_files": [data.file for data in config.data],
        "checks": plan.entries,
    }
    plan.files[PLAN_FILE] = json.dumps(runner_plan).encode()
    return plan


def _trial_rng(config: NotebookConfig, context: GradingContext, name: str, trial: int) -> np.random.Generator:
    """A trial's generator: the question's seed, the student's variant, the check and the trial."""
    return np.random.default_rng([config.seed, context.variant_seed, zlib.crc32(name.encode()), trial])


def _add_entry(
    plan: Plan,
    check_id: str,
    check: FunctionCheck | ModuleCheck | GradientCheck | ClassifierCheck | RegressionCheck | SequenceCheck,
    kind: str,
    arrays: dict[str, Any],
    max_elements: int,
    inputs_file: str | None = None,
    **fields: Any,
) -> None:
    """One call's plan entry and its inputs file (the only things of it that enter the sandbox)."""
    inputs_file = inputs_file or f"{check_id.replace('#', '-')}.npz"
    plan.files[inputs_file] = npz_bytes(arrays)
    plan.entries.append(
        {
            "id": check_id,
            "name": check.name,
            "kind": kind,
            **fields,
            "inputs": inputs_file,
            "seconds": check.seconds,
            "max_elements": max_elements,
            "max_bytes": _result_bytes(max_elements),
        }
    )


def _add_function_trial(
    plan: Plan, config: NotebookConfig, check: FunctionCheck, trial: int, context: GradingContext
) -> None:
    check_id = f"{check.name}#{trial}"
    inputs = dict(context.reference_function(check.inputs)(_trial_rng(config, context, check.name, trial)))
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    want = as_tree(context.reference_function(check.reference)(*torch_arguments(arrays)))
    plan.expected[check_id] = (arrays, want)
    max_elements = WRONG_SHAPE_FACTOR * tree_size(want) + WRONG_SHAPE_EXTRA_ELEMENTS
    _add_entry(plan, check_id, check, "function", arrays, max_elements, args=list(arrays))


def _add_module_trial(
    plan: Plan, config: NotebookConfig, check: ModuleCheck, trial: int, context: GradingContext
) -> None:
    check_id = f"{check.name}#{trial}"
    built = module_trial(check, _trial_rng(config, context, check.name, trial), context)
    plan.modules[check_id] = built
    max_elements = module_result_elements(built, WRONG_SHAPE_FACTOR, WRONG_SHAPE_EXTRA_ELEMENTS)
    _add_entry(plan, check_id, check, "module", built.arrays, max_elements, **built.entry)


def _add_gradient_check(
    plan: Plan, config: NotebookConfig, check: GradientCheck, context: GradingContext
) -> None:
    """Each trial's float64 arguments and dy enter the sandbox; the reference's gradients stay here."""
    trials = plan.gradients.setdefault(check.name, [])
    for trial_number in range(check.trials):
        trial = reference_gradients(check, context, _trial_rng(config, context, check.name, trial_number))
        trials.append(trial)
        # The backward's gradients, and as many again for autograd through the notebook's forward.
        copies = 2 if check.notebook_forward is not None else 1
        due = sum(int(gradient.size) for gradient in trial.gradients)
        max_elements = copies * (WRONG_SHAPE_FACTOR * due + WRONG_SHAPE_EXTRA_ELEMENTS)
        _add_entry(
            plan,
            f"{check.name}#{trial_number}",
            check,
            "gradient",
            trial.inputs | {UPSTREAM: trial.upstream},
            max_elements,
            args=list(trial.inputs),
            wrt=check.wrt,
            upstream=UPSTREAM,
            notebook_forward=check.notebook_forward,
        )


def _add_classifier(plan: Plan, classifier: ClassifierCheck, context: GradingContext) -> None:
    features, targets = context.reference_function(classifier.dataset)(classifier.seed, classifier.size)
    # Only the features enter the sandbox; the labels stay here.
    plan.labels[classifier.name] = np.asarray(targets, dtype=np.int64)
    features = np.asarray(features, dtype=np.float32)
    max_elements = classifier.size * max(classifier.classes, MIN_CLASSIFIER_COLUMNS)
    _add_trained_model(plan, classifier, "classifier", features, max_elements)


def _add_regression(plan: Plan, check: RegressionCheck, context: GradingContext) -> None:
    features, targets = context.reference_function(check.dataset)(check.seed, check.size)
    features, targets = np.asarray(features), np.asarray(targets)
    where = f"dataset {check.dataset!r} of {check.name}"
    if features.ndim < 1 or len(features) != check.size or features.dtype.kind not in "fiub":
        raise ValueError(f"{where} must give {check.size} numeric feature rows, not {features.shape}")
    if targets.dtype.kind not in "fiu" or targets.shape[:1] != (check.size,) or targets.ndim > 2:
        raise ValueError(f"{where} must give numeric targets of shape ({check.size},) or ({check.size}, k)")
    if targets.size == 0 or not np.all(np.isfinite(targets)):
        raise ValueError(f"{where} gives targets that are empty, NaN or infinite")
    # Only the features enter the sandbox; the targets stay here.
    plan.targets[check.name] = np.asarray(targets, dtype=np.float64)
    columns = targets.shape[1] if targets.ndim == 2 else 1
    _add_trained_model(
        plan,
        check,
        "regression",
        features.astype(np.float32),
        check.size * max(columns, MIN_REGRESSION_COLUMNS),
    )


def _add_sequence(plan: Plan, check: SequenceCheck, context: GradingContext) -> None:
    tokens, targets = context.reference_function(check.dataset)(check.seed, check.size)
    tokens, targets = np.asarray(tokens), np.asarray(targets)
    where = f"dataset {check.dataset!r} of {check.name}"
    if (
        tokens.ndim != 2
        or tokens.shape[0] != check.size
        or tokens.shape[1] < 1
        or tokens.dtype.kind not in "iu"
    ):
        raise ValueError(f"{where} must give integer tokens of shape ({check.size}, T), not {tokens.shape}")
    if targets.shape != tokens.shape or targets.dtype.kind not in "iu":
        raise ValueError(f"{where} must give integer targets of the tokens' shape {tokens.shape}")
    if targets.min() < 0 or targets.max() >= check.vocabulary:
        raise ValueError(f"{where} must give targets in 0..{check.vocabulary - 1}")
    logits = targets.size * check.vocabulary
    if logits > MAX_SEQUENCE_OUTPUT_VALUES:
        raise ValueError(
            f"{where}: {tokens.shape} tokens x {check.vocabulary} classes is {logits} logits, "
            f"more than the {MAX_SEQUENCE_OUTPUT_VALUES} a sequence check may return"
        )
    # Only the input tokens enter the sandbox; the targets stay here.
    plan.labels[check.name] = targets.astype(np.int64)
    # Exactly the logits due: a transposed output (batch, vocabulary, time) still comes back.
    _add_trained_model(plan, check, "sequence", tokens.astype(np.int64), logits)


def _add_trained_model(
    plan: Plan,
    check: ClassifierCheck | RegressionCheck | SequenceCheck,
    kind: str,
    features: Any,
    max_elements: int,
) -> None:
    """A trained model's plan entry: its features (`X`) enter the sandbox, its labels stay here."""
    inputs_file = f"{check.name}-features.npz"
    _add_entry(plan, check.name, check, kind, {"X": features}, max_elements, inputs_file, batch=check.batch)


def _result_bytes(max_elements: int) -> int:
    """What a check's pipe may hold: its values as float64 and the headers around them."""
    return FLOAT64_BYTES * max_elements + RESULT_OVERHEAD_BYTES


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def sandbox_limits(config: NotebookConfig, plan: Plan, device: str) -> SandboxLimits:
    """The run's limits: the question's, plus the interpreter's start and every check's time."""
    seconds = STARTUP_SECONDS + config.notebook_seconds + sum(entry["seconds"] for entry in plan.entries)
    check_overhead = sum(
        FLOAT64_BYTES * entry["max_elements"] + CONTROL_STREAM_CHECK_OVERHEAD_BYTES for entry in plan.entries
    )
    return SandboxLimits(
        wall_seconds=seconds,
        cpu_seconds=int(CPU_SECONDS_PER_WALL_SECOND * seconds) + 1,
        memory_bytes=config.memory_mb * MIB,
        max_processes=config.max_processes,
        work_dir_bytes=config.work_dir_mb * MIB,
        max_result_bytes=CONTROL_STREAM_BYTES + check_overhead,
        gpu=device.startswith("cuda"),
    )
