"""The fixed table of functions an answer may call. Values carry the batch of points last."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Shape = tuple[int, ...]  # a value's shape, without the batch axis: () scalar, (n,) vector, (m, n) matrix


class ShapeError(ValueError):
    pass


def value_shape(array: Array) -> tuple[int, ...]:
    return tuple(array.shape[:-1])


def _unary(function: Callable[[Array], Array]) -> Callable[[list[Array]], Array]:
    def apply(args: list[Array]) -> Array:
        return function(args[0])

    return apply


def _sigmoid(x: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _softmax(args: list[Array]) -> Array:
    (x,) = args
    if x.ndim != 2:
        raise ShapeError(f"softmax takes a vector, got shape {value_shape(x)}")
    shifted = np.exp(x - x.max(axis=0, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=0, keepdims=True))


def _reduce_vector(function: Callable[..., Array]) -> Callable[[list[Array]], Array]:
    def apply(args: list[Array]) -> Array:
        (x,) = args
        if x.ndim == 1:
            return x
        return np.asarray(function(x.reshape(-1, x.shape[-1]), axis=0))

    return apply


def _dot(args: list[Array]) -> Array:
    a, b = args
    if value_shape(a) != value_shape(b):
        raise ShapeError(f"dot needs equal shapes, got {value_shape(a)} and {value_shape(b)}")
    if a.ndim == 1:
        return np.asarray(a * b)
    # np.add.reduce is what ndarray.sum calls, without its Python-level wrapper.
    return np.asarray(np.add.reduce((a * b).reshape(-1, a.shape[-1]), axis=0))


def _transpose(args: list[Array]) -> Array:
    (x,) = args
    if x.ndim == 3:
        return np.asarray(x.transpose(1, 0, 2))
    return x  # scalars and vectors: no orientation is modelled


def matmul_shape(left: Shape, right: Shape) -> Shape:
    """(m,n)@(n,k) -> (m,k), (m,n)@(n,) -> (m,), (n,)@(n,k) -> (k,), (n,)@(n,) -> (): numpy's rules."""
    if left and right and len(left) <= 2 and len(right) <= 2:
        inner_left = left[-1]
        inner_right = right[0] if len(right) == 1 else right[-2]
        if inner_left == inner_right:
            return left[:-1] + right[1:]
    raise ShapeError(f"@ cannot multiply shapes {left} and {right}")


def matmul(a: Array, b: Array) -> Array:
    shapes = (value_shape(a), value_shape(b))
    if a.ndim == 2 and b.ndim == 2 and a.shape[0] == b.shape[0]:
        return np.asarray(np.einsum("np,np->p", a, b))
    if a.ndim == 3 and b.ndim == 2 and a.shape[1] == b.shape[0]:
        return np.asarray(np.einsum("mnp,np->mp", a, b))
    if a.ndim == 2 and b.ndim == 3 and a.shape[0] == b.shape[0]:
        return np.asarray(np.einsum("np,nkp->kp", a, b))
    if a.ndim == 3 and b.ndim == 3 and a.shape[1] == b.shape[0]:
        return np.asarray(np.einsum("mnp,nkp->mkp", a, b))
    raise ShapeError(f"@ cannot multiply shapes {shapes[0]} and {shapes[1]}")


def _elementwise_shape(shapes: list[Shape]) -> Shape:
    return shapes[0]


def _softmax_shape(shapes: list[Shape]) -> Shape:
    if len(shapes[0]) != 1:
        raise ShapeError(f"softmax takes a vector, got shape {shapes[0]}")
    return shapes[0]


def _reduced_shape(shapes: list[Shape]) -> Shape:
    return ()


def _dot_shape(shapes: list[Shape]) -> Shape:
    a, b = shapes
    if a != b:
        raise ShapeError(f"dot needs equal shapes, got {a} and {b}")
    return ()


def _transpose_shape(shapes: list[Shape]) -> Shape:
    (shape,) = shapes
    return shape[::-1] if len(shape) == 2 else shape


@dataclass(frozen=True, slots=True)
class Function:
    arity: int
    apply: Callable[[list[Array]], Array]
    meaning: str
    # The result's shape from the arguments' shapes (read statically, before any evaluation);
    # raises ShapeError where apply would.
    shape: Callable[[list[Shape]], Shape]


FUNCTIONS: dict[str, Function] = {
    "exp": Function(1, _unary(np.exp), "exponential", _elementwise_shape),
    "log": Function(1, _unary(np.log), "natural logarithm", _elementwise_shape),
    "tanh": Function(1, _unary(np.tanh), "hyperbolic tangent", _elementwise_shape),
    "sigmoid": Function(1, _unary(_sigmoid), "logistic sigmoid", _elementwise_shape),
    "softmax": Function(1, _softmax, "softmax of a vector", _softmax_shape),
    "sum": Function(1, _reduce_vector(np.sum), "sum of a vector's components", _reduced_shape),
    "prod": Function(1, _reduce_vector(np.prod), "product of a vector's components", _reduced_shape),
    "dot": Function(2, _dot, "dot product", _dot_shape),
    "transpose": Function(1, _transpose, "transpose", _transpose_shape),
    "abs": Function(1, _unary(np.abs), "absolute value", _elementwise_shape),
    "sqrt": Function(1, _unary(np.sqrt), "square root", _elementwise_shape),
    "psi": Function(1, _unary(np.tanh), "the activation psi = tanh", _elementwise_shape),
    "dpsi": Function(
        1,
        _unary(lambda z: 1.0 - np.tanh(z) ** 2),
        "its derivative psi'(z) = 1 - tanh(z)^2",
        _elementwise_shape,
    ),
}
