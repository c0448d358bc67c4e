"""modules reference: a linear layer and an RNN cell as torch.nn.Module classes, and their inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class ReferenceLinear(nn.Module):
    """y = x W^T + b, parameters declared as torch.nn.Linear declares them."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * 0.5)
        self.bias = nn.Parameter(torch.randn(out_features) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


class ReferenceRNNCell(nn.Module):
    """h' = tanh(x W_xh + h W_hh + b)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.W_xh = nn.Parameter(torch.randn(input_size, hidden_size) * 0.5)
        self.W_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.5)
        self.b = nn.Parameter(torch.randn(hidden_size) * 0.5)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.W_xh + h @ self.W_hh + self.b)


def linear_inputs(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.standard_normal((5, 3))}


def rnn_cell_inputs(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.standard_normal((2, 3)), "h": rng.standard_normal((2, 4))}
