"""hw5 reference implementations: the instructor's code, loaded by the grading service."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def hard_attention(q: Array, keys: Array, values: Array) -> Array:
    scores = np.asarray(keys, dtype=np.float64) @ np.asarray(q, dtype=np.float64)
    return np.asarray(values, dtype=np.float64)[int(np.argmax(scores))]


def softmax_attention(q: Array, keys: Array, values: Array) -> Array:
    scores = np.asarray(keys, dtype=np.float64) @ np.asarray(q, dtype=np.float64)
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    return weights @ np.asarray(values, dtype=np.float64)


def attention_variant(rng: np.random.Generator) -> dict[str, list[list[int]] | list[int]]:
    """Small-integer inputs for q3_3, redrawn until the argmax is unique."""
    while True:
        q = rng.integers(-3, 4, size=2)
        keys = rng.integers(-3, 4, size=(4, 2))
        values = rng.integers(0, 10, size=(4, 3))
        scores = keys @ q
        if np.count_nonzero(scores == scores.max()) == 1:
            return {"q": q.tolist(), "keys": keys.tolist(), "values": values.tolist()}


# --- Q2: backpropagation through time, with every reference value from torch.autograd ---------

STEPS = 3


def _bptt_point(
    rng: np.random.Generator, indices: dict[str, int], question: str
) -> tuple[dict[str, Any], Any]:
    """One random instance of the Q2 network, the symbols a student may use, and the value due.

    z_t = w_hh h_{t-1} + w_hx x_t, h_t = tanh(z_t), o_t = w_yh h_t, yhat_t = softmax(o_t),
    J_t = -sum_i y_{t,i} log yhat_{t,i}, J = J_1 + J_2 + J_3.
    """
    import torch

    def leaf(value: Any) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float64, requires_grad=True)

    w_hh, w_hx, w_yh = leaf(rng.normal(0.0, 0.8)), leaf(rng.normal()), leaf(rng.normal(size=2))
    x = torch.tensor(np.concatenate([[0.0], rng.normal(size=STEPS)]), dtype=torch.float64)
    targets = rng.integers(0, 2, size=STEPS + 1)
    y = torch.nn.functional.one_hot(torch.tensor(targets), 2).to(torch.float64)
    y[0] = 0.0
    h = [leaf(rng.normal(0.0, 0.5))]
    z, o, yhat, losses = [torch.zeros(())], [torch.zeros(2)], [torch.zeros(2)], [torch.zeros(())]
    for step in range(1, STEPS + 1):
        z.append(w_hh * h[step - 1] + w_hx * x[step])
        h.append(torch.tanh(z[step]))
        h[step].retain_grad()
        o.append(w_yh * h[step])
        o[step].retain_grad()
        yhat.append(torch.softmax(o[step], dim=0))
        losses.append(-(y[step] * torch.log(yhat[step])).sum())

    def grad(output: torch.Tensor, wrt: torch.Tensor) -> Any:
        (value,) = torch.autograd.grad(output, wrt, retain_graph=True, allow_unused=True)
        return np.zeros(tuple(wrt.shape)) if value is None else value.detach().numpy()

    t = indices.get("t", STEPS)
    symbols = {
        "x": x.numpy(),
        "h": np.array([float(value.detach()) for value in h]),
        "z": np.array([float(value.detach()) for value in z]),
        "o": np.stack([value.detach().numpy() for value in o]),
        "y": y.numpy(),
        "yhat": np.stack([value.detach().numpy() for value in yhat]),
        "w_hh": float(w_hh.detach()),
        "w_hx": float(w_hx.detach()),
        "w_yh": w_yh.detach().numpy(),
        "g_o": np.stack([np.zeros(2)] + [grad(losses[k], o[k]) for k in range(1, STEPS + 1)]),
        "g_h": np.array([float(grad(losses[t], h[k])) for k in range(STEPS + 1)]),
        "gw_hh": np.array([0.0] + [float(grad(losses[k], w_hh)) for k in range(1, STEPS + 1)]),
    }
    if question == "q2_1":
        expected = grad(losses[t], o[t])
    elif question == "q2_2":
        expected = grad(losses[t], h[indices["i"]])
    elif question == "q2_3":
        expected = grad(losses[t], w_hh)
    else:
        expected = grad(sum(losses[1:]), w_hh)
    return symbols, expected


def q2_1_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _bptt_point(rng, indices, "q2_1")


def q2_2_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _bptt_point(rng, indices, "q2_2")


def q2_3_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _bptt_point(rng, indices, "q2_3")


def q2_4_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    return _bptt_point(rng, indices, "q2_4")
