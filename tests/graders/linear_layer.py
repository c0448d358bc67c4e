"""Test material for structured function checks: a linear layer's backward pass returning
`(dx, dW, db)` (and the same as a dict), its reference module, and notebooks right and wrong."""

from __future__ import annotations

import hashlib
import textwrap
from typing import Any

from graders import GradingContext, get_grader
from graders.notebook import NotebookConfig
from service.assignments.references import load_reference_functions
from tests.graders.notebooks import answer_for, notebook_text

REFERENCE_SOURCE = """
import numpy as np


def backward_inputs(rng):
    return {
        "dy": rng.standard_normal((4, 2)).astype(np.float32),
        "x": rng.standard_normal((4, 3)).astype(np.float32),
        "W": rng.standard_normal((3, 2)).astype(np.float32),
    }


def linear_backward_ref(dy, x, W):
    return dy @ W.T, x.T @ dy, dy.sum(0)


def linear_grads_ref(dy, x, W):
    dx, dW, db = linear_backward_ref(dy, x, W)
    return {"dx": dx, "dW": dW, "db": db}


def linear_backward_mean(dy, x, W):
    return dy @ W.T, x.T @ dy / x.shape[0], dy.sum(0)


def linear_grads_mean(dy, x, W):
    dx, dW, db = linear_backward_mean(dy, x, W)
    return {"dx": dx, "dW": dW, "db": db}
"""

MEAN_FEEDBACK = "dW is averaged over the batch: the loss is a sum, so sum over the batch."

BACKWARD_CHECK: dict[str, Any] = {
    "name": "linear_backward",
    "points": 3,
    "inputs": "backward_inputs",
    "reference": "linear_backward_ref",
    "outputs": ["dx", "dW", "db"],
    "mistakes": [{"reference": "linear_backward_mean", "feedback": MEAN_FEEDBACK}],
    "seconds": 5,
}
GRADS_CHECK: dict[str, Any] = {
    "name": "linear_grads",
    "points": 3,
    "inputs": "backward_inputs",
    "reference": "linear_grads_ref",
    "part_credit": True,
    "tolerances": {"db": {"rtol": 1e-4, "atol": 1e-4}},
    "mistakes": [{"reference": "linear_grads_mean", "feedback": MEAN_FEEDBACK}],
    "seconds": 5,
}

RIGHT = """
import torch

def linear_backward(dy, x, W):
    return dy @ W.T, x.T @ dy, dy.sum(0)

def linear_grads(dy, x, W):
    return {"dx": dy @ W.T, "dW": x.T @ dy, "db": dy.sum(0)}
"""

DW_TRANSPOSED_AND_AVERAGED = """
import torch

def linear_backward(dy, x, W):
    return dy @ W.T, dy.T @ x, dy.sum(0)

def linear_grads(dy, x, W):
    return {"dx": dy @ W.T, "dW": x.T @ dy / x.shape[0], "db": dy.sum(0)}
"""

WRONG_STRUCTURES = """
import torch

def linear_backward(dy, x, W):
    return dy @ W.T, x.T @ dy

def linear_grads(dy, x, W):
    return {"dx": dy @ W.T, "dW": x.T @ dy}
"""

CHANGES_ITS_INPUT = """
import torch

def linear_backward(dy, x, W):
    dW = x.T @ dy
    x += 1  # an accident: the caller's x changes
    return dy @ W.T, dW, dy.sum(0)

def linear_grads(dy, x, W):
    return {"dx": dy @ W.T, "dW": x.T @ dy, "db": dy.sum(0)}
"""

# Results written straight to the check's pipe, as student code could: forged layouts, a
# compressed archive; and values no record can hold (a NaN part, a huge part).
HOSTILE = textwrap.dedent(
    """
    import inspect, io, json, os, struct
    import numpy as np
    import torch

    def _send(header, payload):
        fd = next(f.frame.f_locals["fd"] for f in inspect.stack() if f.function == "run_check_forked")
        header = json.dumps(dict(header, payload_bytes=len(payload))).encode()
        os.write(fd, struct.pack(">I", len(header)) + header + payload)
        os._exit(0)

    def _npz(save, **arrays):
        buffer = io.BytesIO()
        save(buffer, **arrays)
        return buffer.getvalue()

    PARTS = {name: np.zeros(3) for name in ("p0", "p1", "p2")}

    def forged_layout(dy, x, W):
        _send({"status": "ok", "layout": {"tuple": ["p0", "p1"]}}, _npz(np.savez, **PARTS))

    def deep_layout(dy, x, W):
        layout = "p0"
        for _ in range(20):
            layout = {"tuple": [layout]}
        _send({"status": "ok", "layout": layout}, _npz(np.savez, p0=np.zeros(3)))

    def compressed(dy, x, W):
        layout = {"tuple": ["p0", "p1", "p2"]}
        _send({"status": "ok", "layout": layout}, _npz(np.savez_compressed, **PARTS))

    def nan_part(dy, x, W):
        return dy @ W.T, x.T @ dy * float("nan"), dy.sum(0)

    def huge_part(dy, x, W):
        return dy @ W.T, torch.zeros(10**6), dy.sum(0)
    """
)
HOSTILE_NAMES = ("forged_layout", "deep_layout", "compressed", "nan_part", "huge_part")


def reference_functions() -> Any:
    return load_reference_functions(REFERENCE_SOURCE, hashlib.sha256(REFERENCE_SOURCE.encode()).hexdigest())


def notebook_config(*checks: dict[str, Any]) -> NotebookConfig:
    config = get_grader("notebook").parse_config({"functions": list(checks), "notebook_seconds": 60})
    assert isinstance(config, NotebookConfig)
    return config


def grade(cells: list[str], config: NotebookConfig) -> Any:
    context = GradingContext(variant_seed=7, reference=reference_functions())
    return get_grader("notebook").grade_raw_answer(config, answer_for(notebook_text(cells)), context)
