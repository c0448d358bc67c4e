"""Stage 2 of notebook grading, outside the sandbox: each check's result against the reference."""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from graders._result import JSONValue
from graders.notebook._session import MAX_REASON_CHARS, CheckResult, clean_text
from graders.notebook._wire import MAX_LAYOUT_PARTS, layout_leaves
from graders.notebook.config import Visibility

FloatArray = npt.NDArray[np.float64]
# A check's value: one array, or a tuple, list or dict of them (nested), as the reference returned
# it or as a structured record (`_wire.py`) brought it out of the sandbox.
Tree: TypeAlias = "FloatArray | tuple[Tree, ...] | list[Tree] | dict[str, Tree]"
# The .npy versions np.save writes for numeric arrays (3.0 is for non-Latin-1 field names only).
NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
CENTRAL_DIRECTORY_ENTRY = b"PK\x01\x02"


def load_array(payload: bytes) -> FloatArray:
    """One .npy array from the sandbox: never unpickled, its header declaring no more values than
    the bytes after it hold (numpy allocates what a header declares before it reads a value, so a
    16-byte array declaring a petabyte would raise MemoryError), always a float64 array."""
    stream = io.BytesIO(payload)
    read_header = NPY_HEADER_READERS.get(np.lib.format.read_magic(stream))
    if read_header is None:
        raise ValueError("not a version 1 or 2 .npy array")
    shape, _fortran_order, dtype = read_header(stream)
    if (
        any(length < 0 for length in shape)
        or math.prod(shape) * dtype.itemsize > len(payload) - stream.tell()
    ):
        raise ValueError("an array's header declares more values than it holds")
    return _numeric(np.load(io.BytesIO(payload), allow_pickle=False))


def load_tree(payload: bytes, layout: Any) -> Tree:
    """A check's value from the sandbox: one .npy array (layout None), or the .npz of a structured
    record rebuilt along its layout. Never unpickled; every member stored uncompressed (so no
    member is larger than the payload the pipe's limit already bounded) and named by the layout
    exactly once; every leaf read by `load_array`. Raises ValueError saying what is wrong."""
    if layout is None:
        return load_array(payload)
    names = layout_leaves(layout)
    # zipfile parses every entry of the central directory first (some 300 bytes of memory each):
    # 64 MB of forged empty entries would cost the grading process gigabytes and a minute. Each
    # entry starts with this signature, so counting them bounds that parse (leaving room for
    # the signature's bytes in an array's values).
    if payload.count(CENTRAL_DIRECTORY_ENTRY) > len(names) + MAX_LAYOUT_PARTS:
        raise ValueError("the result's archive has more members than its layout names")
    arrays: dict[str, FloatArray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = archive.infolist()
            if any(member.compress_type != zipfile.ZIP_STORED for member in members):
                raise ValueError("the result's archive is compressed")
            if sum(member.file_size for member in members) > len(payload):
                raise ValueError("the result's archive claims more bytes than it holds")
            if sorted(member.filename for member in members) != sorted(f"{name}.npy" for name in names):
                raise ValueError("the result's archive does not hold exactly the parts its layout names")
            for name in names:
                arrays[name] = load_array(archive.read(f"{name}.npy"))
    # What zipfile raises for a forged member (a bad CRC, an encrypted or patched one, a header
    # naming another file, overlapping members) besides ValueError.
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        RuntimeError,
        NotImplementedError,
        OSError,
        EOFError,
    ) as error:
        raise ValueError(f"the result is not an .npz archive ({error})") from None

    def build(node: Any) -> Tree:
        if isinstance(node, str):
            return arrays[node]
        ((kind, children),) = node.items()
        if kind == "tuple":
            return tuple(build(child) for child in children)
        if kind == "list":
            return [build(child) for child in children]
        return {key: build(child) for key, child in children}

    return build(layout)


def _numeric(array: Any) -> FloatArray:
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ValueError("a part of the result is not a numeric array")
    return np.asarray(array, dtype=np.float64)


def as_tree(value: Any) -> Tree:
    """A reference's value (tensors, arrays or numbers, or tuples, lists or dicts of them) as a Tree."""
    if isinstance(value, tuple):
        return tuple(as_tree(part) for part in value)
    if isinstance(value, list):
        return [as_tree(part) for part in value]
    if isinstance(value, dict):
        return {str(key): as_tree(part) for key, part in value.items()}
    return as_numpy(value)


def tree_size(tree: Tree) -> int:
    """How many values a Tree holds (the plan bounds a result by it)."""
    if isinstance(tree, np.ndarray):
        return int(tree.size)
    parts = tree.values() if isinstance(tree, dict) else tree
    return sum(tree_size(part) for part in parts)


def describe(tree: Tree) -> str:
    """A value's kind for feedback: "a tensor of shape (3, 2)", "a tuple of 3 parts"."""
    if isinstance(tree, np.ndarray):
        return f"a tensor of shape {tuple(tree.shape)}"
    kind = "dict" if isinstance(tree, dict) else type(tree).__name__
    return f"a {kind} of {len(tree)} part{'' if len(tree) == 1 else 's'}"


def as_numpy(value: Any) -> FloatArray:
    detach = getattr(value, "detach", None)
    if detach is not None:
        value = detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


@dataclass
class CheckOutcome:
    name: str
    points: float
    max_points: float
    line: str
    details: dict[str, JSONValue] = field(default_factory=dict)
    # Whether the student sees this check's result at once or once hidden results are released.
    visibility: Visibility = "public"


def threshold_points(value: float, zero_at: float, full_at: float, points: float) -> float:
    """A trained model's points for its metric: none at `zero_at` or worse, all at `full_at` or
    better, linear between. Either end may be the higher one (an accuracy: higher is better; an
    error or a perplexity: lower is better); the config validators keep the two apart."""
    fraction = min(max((value - zero_at) / (full_at - zero_at), 0.0), 1.0)
    return round(fraction * points, 6)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a check has no value to compare: the feedback, and the status stored in its details."""

    message: str
    status: str


def returned_value(result: CheckResult | None, stopped: str, what: str) -> Tree | Failure:
    """The value a check returned (one array, or a structure of them), or why there is none."""
    if result is None:
        return Failure(f"not run: the run was stopped by {stopped}.", "not_run")
    if result.status != "ok":
        return Failure(*_failure(result))
    try:
        return load_tree(result.payload, result.layout)
    except ValueError as error:
        # The reason may quote the archive's member names: text from the sandbox.
        reason = clean_text(str(error), MAX_REASON_CHARS)
        return Failure(f"the {what} could not be read as a tensor ({reason}).", "error")


def no_points(
    name: str, max_points: float, details: dict[str, JSONValue], message: str, status: str
) -> CheckOutcome:
    """The outcome of a check that earned nothing, saying why."""
    details.update(points=0.0, status=status, message=message)
    return CheckOutcome(name, 0.0, max_points, f"{name}: 0/{max_points:g} - {message}", details)


def _failure(result: CheckResult) -> tuple[str, str]:
    """The feedback and the status of a check that returned no result."""
    if result.status == "timeout":
        return f"{result.message}.", "timeout"
    if result.status == "invalid":
        return f"{result.message}.", "invalid"
    error = result.message or "failed"
    return (error if error.startswith(("returned", "the call")) else f"raised {error}"), "error"


def torch_arguments(arrays: dict[str, Any]) -> list[Any]:
    import torch

    # Copies: a reference (or a named mistake) that changes an argument in place must not change
    # the inputs kept for the sandbox and for the other calls.
    return [torch.tensor(np.asarray(value)) for value in arrays.values()]
