"""layers reference implementations: every expected value from torch.autograd, never a formula."""

from __future__ import annotations

from typing import Any

import numpy as np


def _point(rng: np.random.Generator, question: str) -> tuple[dict[str, Any], Any]:
    """One random instance of the three small networks, the symbols, and the gradient due.

    Linear layer: y = W x + b, L = 1/2 ||y - t||^2 (x, b, t, y columns).
    Cross-entropy: L = -sum_j c_j log softmax(z)_j, c one-hot, p = softmax(z).
    Attention output: O = A V, L = sum(G * O), so dL/dO = G (A row-stochastic).
    """
    import torch

    def leaf(value: Any) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float64, requires_grad=True)

    def grad(output: torch.Tensor, wrt: torch.Tensor) -> Any:
        (value,) = torch.autograd.grad(output, wrt, retain_graph=True)
        return value.detach().numpy()

    w, x, b = leaf(rng.normal(size=(2, 3))), leaf(rng.normal(size=(3, 1))), leaf(rng.normal(size=(2, 1)))
    t = torch.tensor(rng.normal(size=(2, 1)), dtype=torch.float64)
    y = w @ x + b
    linear_loss = 0.5 * ((y - t) ** 2).sum()

    z = leaf(rng.normal(size=4))
    c = torch.nn.functional.one_hot(torch.tensor(int(rng.integers(0, 4))), 4).to(torch.float64)
    cross_entropy = -(c * torch.log_softmax(z, dim=0)).sum()

    a = leaf(torch.softmax(torch.tensor(rng.normal(size=(3, 4))), dim=1).numpy())
    v = leaf(rng.normal(size=(4, 2)))
    g = torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float64)
    attention_loss = (g * (a @ v)).sum()

    symbols = {
        "W": w.detach().numpy(),
        "x": x.detach().numpy(),
        "b": b.detach().numpy(),
        "t": t.numpy(),
        "y": y.detach().numpy(),
        "z": z.detach().numpy(),
        "c": c.numpy(),
        "p": torch.softmax(z, dim=0).detach().numpy(),
        "A": a.detach().numpy(),
        "V": v.detach().numpy(),
        "G": g.numpy(),
    }
    expected = {
        "lin_dW": lambda: grad(linear_loss, w),
        "lin_dx": lambda: grad(linear_loss, x),
        "lin_db": lambda: grad(linear_loss, b),
        "ce_dz": lambda: grad(cross_entropy, z),
        "att_dV": lambda: grad(attention_loss, v),
        "att_dA": lambda: grad(attention_loss, a),
    }[question]()
    return symbols, expected


def lin_dw_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _point(rng, "lin_dW")


def lin_dx_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _point(rng, "lin_dx")


def lin_db_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _point(rng, "lin_db")


def ce_dz_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _point(rng, "ce_dz")


def att_dv_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _point(rng, "att_dV")


def att_da_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _point(rng, "att_dA")
