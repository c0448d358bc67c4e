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


# --- Q4: the notebook. Reference functions take torch tensors (float32 inputs) and compute in
# float64; input generators draw one call's arguments, in the order the student's function takes.

SEQUENCE_LENGTH = 20
TRAINING_SEED = 20_251_125
TRAINING_ROWS = 4000


def rnn_forward(x: Any, h0: Any, w_hh: Any, w_xh: Any, b: Any) -> Any:
    """All hidden states (T, B, H) of h_t = tanh(x_t W_xh + h_{t-1} W_hh + b)."""
    import torch

    h = h0.double()
    states = []
    for x_t in x.double():
        h = torch.tanh(x_t @ w_xh.double() + h @ w_hh.double() + b.double())
        states.append(h)
    return torch.stack(states)


def rnn_forward_relu(x: Any, h0: Any, w_hh: Any, w_xh: Any, b: Any) -> Any:
    """A named mistake: ReLU where tanh belongs."""
    import torch

    h = h0.double()
    states = []
    for x_t in x.double():
        h = torch.relu(x_t @ w_xh.double() + h @ w_hh.double() + b.double())
        states.append(h)
    return torch.stack(states)


def rnn_forward_inputs(rng: np.random.Generator) -> dict[str, Any]:
    steps, batch, features, hidden = (
        rng.integers(3, 7),
        rng.integers(2, 5),
        rng.integers(2, 6),
        rng.integers(3, 8),
    )
    return {
        "x": rng.normal(size=(steps, batch, features)).astype(np.float32),
        "h0": rng.normal(size=(batch, hidden)).astype(np.float32),
        "W_hh": (rng.normal(size=(hidden, hidden)) / np.sqrt(hidden)).astype(np.float32),
        "W_xh": (rng.normal(size=(features, hidden)) / np.sqrt(features)).astype(np.float32),
        "b": rng.normal(scale=0.1, size=hidden).astype(np.float32),
    }


def attention(q: Any, k: Any, v: Any) -> Any:
    import torch

    return torch.nn.functional.scaled_dot_product_attention(q.double(), k.double(), v.double())


def attention_unscaled(q: Any, k: Any, v: Any) -> Any:
    """A named mistake: scores not divided by sqrt(d)."""
    import torch

    scores = q.double() @ k.double().transpose(-2, -1)
    return torch.softmax(scores, dim=-1) @ v.double()


def attention_inputs(rng: np.random.Generator) -> dict[str, Any]:
    batch, queries, keys = rng.integers(1, 4), rng.integers(2, 6), rng.integers(2, 7)
    depth, value_depth = rng.integers(4, 17), rng.integers(2, 9)
    return {
        "q": rng.normal(size=(batch, queries, depth)).astype(np.float32),
        "K": rng.normal(size=(batch, keys, depth)).astype(np.float32),
        "V": rng.normal(size=(batch, keys, value_depth)).astype(np.float32),
    }


def _bptt_loss(x: Any, y: Any, h0: Any, w_hh: Any, w_hx: Any, w_yh: Any, steps: int) -> Any:
    import torch

    h = h0
    loss = torch.zeros((), dtype=torch.float64)
    for t in range(steps):
        h = torch.tanh(w_hh * h + w_hx * x[t])
        loss = loss - (y[t] * torch.log_softmax(w_yh * h, dim=0)).sum()
    return loss


def _bptt_grad(x: Any, y: Any, h0: Any, w_hh: Any, w_hx: Any, w_yh: Any, steps: int) -> Any:
    import torch

    recurrent = w_hh.double().clone().requires_grad_(True)
    loss = _bptt_loss(x.double(), y.double(), h0.double(), recurrent, w_hx.double(), w_yh.double(), steps)
    (gradient,) = torch.autograd.grad(loss, recurrent)
    return gradient


def bptt_grad_w_hh(x: Any, y: Any, h0: Any, w_hh: Any, w_hx: Any, w_yh: Any) -> Any:
    """dJ/dw_hh of the Q2 network, J = J_1 + J_2 + J_3, from torch.autograd."""
    return _bptt_grad(x, y, h0, w_hh, w_hx, w_yh, STEPS)


def bptt_grad_w_hh_short(x: Any, y: Any, h0: Any, w_hh: Any, w_hx: Any, w_yh: Any) -> Any:
    """A named mistake: the loss of the last time step left out."""
    return _bptt_grad(x, y, h0, w_hh, w_hx, w_yh, STEPS - 1)


def bptt_inputs(rng: np.random.Generator) -> dict[str, Any]:
    targets = rng.integers(0, 2, size=STEPS)
    return {
        "x": rng.normal(size=STEPS).astype(np.float32),
        "y": np.eye(2, dtype=np.float32)[targets],
        "h0": np.float32(rng.normal(scale=0.5)),
        "w_hh": np.float32(rng.normal(scale=0.8)),
        "w_hx": np.float32(rng.normal()),
        "w_yh": rng.normal(size=2).astype(np.float32),
    }


def sequences(seed: int, size: int) -> tuple[Any, Any]:
    """Binary sequences of length 20, labelled 1 when the first half holds more ones than the second."""
    rng = np.random.default_rng(seed)
    features = rng.integers(0, 2, size=(size, SEQUENCE_LENGTH))
    half = SEQUENCE_LENGTH // 2
    labels = (features[:, :half].sum(axis=1) > features[:, half:].sum(axis=1)).astype(np.int64)
    return features.astype(np.int64), labels


def training_set() -> dict[str, Any]:
    """data/train.npz, the file the notebook trains on (make_data.py writes it)."""
    features, labels = sequences(TRAINING_SEED, TRAINING_ROWS)
    return {"X": features, "y": labels}
