"""layers reference: a linear layer and an RNN cell, forward and backward, and a small regression.

The instructor's code, loaded by the grading service (never by student code). Reference functions
take torch tensors (float32 for function checks, float64 for the gradient check) and compute in
float64; input generators draw one call's arguments from a numpy Generator, in the order the
student's function takes them; `Reference...` classes are torch.nn.Module subclasses with the same
constructor keywords as the classes the notebook defines.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# --- q2: the scalar unit p = w x + b under the squared error L = (p - y)^2 / 2 -----------------


def dloss_dw_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    """One random (x, w, b, y) and dL/dw there, from torch.autograd."""
    x, b, y = (torch.tensor(rng.normal(), dtype=torch.float64) for _ in range(3))
    w = torch.tensor(rng.normal(), dtype=torch.float64, requires_grad=True)
    loss = (w * x + b - y) ** 2 / 2
    (gradient,) = torch.autograd.grad(loss, w)
    symbols = {"x": float(x), "w": float(w.detach()), "b": float(b), "y": float(y)}
    return symbols, float(gradient)


# --- q3: functions -------------------------------------------------------------------------------


def linear_forward_ref(x: Any, weight: Any, bias: Any) -> Any:
    """y = x W + b for a batch x (B, n), W (n, m), b (m,)."""
    return x.double() @ weight.double() + bias.double()


def linear_forward_inputs(rng: np.random.Generator) -> dict[str, Any]:
    batch, features, outputs = rng.integers(2, 6), rng.integers(2, 7), rng.integers(1, 5)
    return {
        "x": rng.normal(size=(batch, features)).astype(np.float32),
        "W": (rng.normal(size=(features, outputs)) / np.sqrt(features)).astype(np.float32),
        "b": rng.normal(scale=0.1, size=outputs).astype(np.float32),
    }


def linear_backward_ref(dy: Any, x: Any, weight: Any) -> tuple[Any, Any, Any]:
    """(dL/dx, dL/dW, dL/db) of y = x W + b, given the upstream gradient dy = dL/dy (B, m)."""
    dy, x, weight = dy.double(), x.double(), weight.double()
    return dy @ weight.T, x.T @ dy, dy.sum(dim=0)


def linear_backward_transposed(dy: Any, x: Any, weight: Any) -> tuple[Any, Any, Any]:
    """A named mistake: dW as dy^T x, the transpose of the gradient due (dx and db right)."""
    dx, d_weight, db = linear_backward_ref(dy, x, weight)
    return dx, d_weight.T, db


def backward_inputs(rng: np.random.Generator) -> dict[str, Any]:
    batch, features, outputs = rng.integers(2, 6), rng.integers(2, 7), rng.integers(2, 5)
    return {
        "dy": rng.normal(size=(batch, outputs)).astype(np.float32),
        "x": rng.normal(size=(batch, features)).astype(np.float32),
        "W": (rng.normal(size=(features, outputs)) / np.sqrt(features)).astype(np.float32),
    }


# --- q3: modules ---------------------------------------------------------------------------------


class ReferenceLinear(torch.nn.Module):
    """y = x W + b with W (in_features, out_features); its parameters are drawn by the check."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(in_features, out_features) / in_features**0.5)
        self.bias = torch.nn.Parameter(0.1 * torch.randn(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


def linear_module_inputs(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.normal(size=(int(rng.integers(2, 6)), 4)).astype(np.float32)}


class ReferenceRNNCell(torch.nn.Module):
    """h' = tanh(x W_xh + h W_hh + b): one step of a vanilla RNN."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.W_xh = torch.nn.Parameter(torch.randn(input_size, hidden_size) / input_size**0.5)
        self.W_hh = torch.nn.Parameter(torch.randn(hidden_size, hidden_size) / hidden_size**0.5)
        self.b = torch.nn.Parameter(0.1 * torch.randn(hidden_size))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return rnn_cell_forward_ref(x, h, self.W_xh, self.W_hh, self.b)


def rnn_cell_inputs(rng: np.random.Generator) -> dict[str, Any]:
    batch = int(rng.integers(2, 6))
    return {
        "x": rng.normal(size=(batch, 3)).astype(np.float32),
        "h": rng.normal(scale=0.5, size=(batch, 4)).astype(np.float32),
    }


# --- q3: the gradient check ----------------------------------------------------------------------


# Its parameters are named as rnn_cell_backward_inputs names the arguments (and the gradient
# check's `wrt`), so it may be called by keyword too.
def rnn_cell_forward_ref(x: Any, h: Any, W_xh: Any, W_hh: Any, b: Any) -> Any:  # noqa: N803
    """One RNN step, in the dtype of its arguments (the gradient check passes float64)."""
    return torch.tanh(x @ W_xh + h @ W_hh + b)


def rnn_cell_backward_inputs(rng: np.random.Generator) -> dict[str, Any]:
    batch, inputs, hidden = int(rng.integers(2, 5)), int(rng.integers(2, 5)), int(rng.integers(2, 6))
    return {
        "x": rng.normal(size=(batch, inputs)),
        "h": rng.normal(scale=0.5, size=(batch, hidden)),
        "W_xh": rng.normal(size=(inputs, hidden)) / np.sqrt(inputs),
        "W_hh": rng.normal(size=(hidden, hidden)) / np.sqrt(hidden),
        "b": rng.normal(scale=0.1, size=hidden),
    }


# --- q3: the regression model --------------------------------------------------------------------

FEATURES = 4
TRAINING_SEED = 20_260_114
TRAINING_ROWS = 2000
NOISE = 0.1


def regression_set(seed: int, size: int) -> tuple[Any, Any]:
    """X uniform in [-2, 2]^4, y = sin(x0) + x1 x2 / 2 - x3 / 2 + noise (sd 0.1): an MSE of 0.01
    is the floor, the best constant prediction scores about 1.4 (the variance of y)."""
    rng = np.random.default_rng(seed)
    features = rng.uniform(-2.0, 2.0, size=(size, FEATURES))
    targets = np.sin(features[:, 0]) + features[:, 1] * features[:, 2] / 2 - features[:, 3] / 2
    targets += rng.normal(scale=NOISE, size=size)
    return features.astype(np.float32), targets.astype(np.float32)


def training_set() -> dict[str, Any]:
    """data/train.npz, the file the notebook trains on (make_data.py writes it)."""
    features, targets = regression_set(TRAINING_SEED, TRAINING_ROWS)
    return {"X": features, "y": targets}
