"""Hostile results of issue 14's checks (structured outputs, modules, gradients): what comes out of
the sandbox is data, read strictly, and never crashes the grading process, costs it unbounded
memory, reaches feedback raw, or earns points; the plan ships no expected value into the sandbox.

First the records forged here, without a sandbox (fast); then hostile notebooks, a few sandbox runs
each attacking every check at once (returning strange values, forging records through the runner,
changing their inputs in place).
"""

from __future__ import annotations

import io
import json
import struct
import textwrap
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch

from graders import GradeResult, GradingContext, Verdict, get_grader
from graders.notebook import NotebookConfig
from graders.notebook._compare import load_array, load_tree
from graders.notebook._gradients import gradient_outcome
from graders.notebook._modules import module_outcome
from graders.notebook._plan import PLAN_FILE, Plan, build_plan
from graders.notebook._session import CheckResult
from graders.sandbox import bwrap_path
from tests.graders.notebooks import answer_for, notebook_text

# --- The reference material: a function, a module and a backward pass.


def doubled(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def vector_inputs(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.standard_normal((3, 2))}


class ReferenceAffine(torch.nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(features, features))
        self.bias = torch.nn.Parameter(torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


def affine_inputs(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.standard_normal((2, 3))}


def linear_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: N803
    return x @ W + b


def linear_inputs(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.standard_normal((4, 3)), "W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}


CONTEXT = GradingContext(
    variant_seed=14,
    reference={
        "doubled": doubled,
        "vector_inputs": vector_inputs,
        "ReferenceAffine": ReferenceAffine,
        "affine_inputs": affine_inputs,
        "linear_forward": linear_forward,
        "linear_inputs": linear_inputs,
    },
)


def gradient(name: str) -> dict[str, Any]:
    return {"name": name, "points": 1, "forward": "linear_forward", "inputs": "linear_inputs",
            "wrt": ["x", "W", "b"], "trials": 1, "seconds": 5, "notebook_forward": "my_forward"}  # fmt: skip


# Every check a hostile notebook attacks; the gradient checks differ only by the name called.
GRADIENTS = ("linear_backward", "wide_backward", "keyed_backward", "faked_backward")
CONFIG: dict[str, Any] = {
    "notebook_seconds": 30,
    "memory_mb": 1024,
    "functions": [
        {"name": "double", "points": 1, "reference": "doubled", "inputs": "vector_inputs", "trials": 1,
         "seconds": 5},
    ],
    "modules": [
        {"name": "Affine", "points": 2, "init": {"features": 3}, "reference": "ReferenceAffine",
         "inputs": "affine_inputs", "backward": True, "trials": 1, "seconds": 5},
    ],
    "gradients": [gradient(name) for name in GRADIENTS],
}  # fmt: skip


def config() -> NotebookConfig:
    parsed = get_grader("notebook").parse_config(CONFIG)
    assert isinstance(parsed, NotebookConfig)
    return parsed


@pytest.fixture(scope="module")
def plan() -> Plan:
    return build_plan(config(), CONTEXT, "cpu")


# --- Records forged here.


def npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def declaring(shape: str, data: bytes = b"\0" * 16) -> bytes:
    """A float64 .npy whose header declares `shape` over `data` (16 bytes: two values)."""
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


Change = Callable[[bytearray, int], None]


def patched(payload: bytes, find: bytes, change: Change, every: bool = False) -> bytes:
    """The payload with `change` applied where `find` first (or every time) occurs."""
    data = bytearray(payload)
    start = data.find(find)
    assert start >= 0
    while start >= 0:
        change(data, start)
        start = data.find(find, start + 1) if every else -1
    return bytes(data)


def put(offset: int, value: bytes) -> Change:
    def change(data: bytearray, start: int) -> None:
        data[start + offset : start + offset + len(value)] = value

    return change


def flag(bits: int) -> Change:
    def change(data: bytearray, start: int) -> None:
        # The general-purpose flags: offset 6 in a local header, 8 in a central directory entry.
        data[start + (6 if data[start : start + 4] == LOCAL else 8)] |= bits

    return change


def flipped(data: bytearray, start: int) -> None:
    data[start] ^= 0x01


def flagged(payload: bytes, bits: int) -> bytes:
    return patched(patched(payload, LOCAL, flag(bits)), CENTRAL, flag(bits))


LOCAL, CENTRAL = b"PK\x03\x04", b"PK\x01\x02"
TWO = archive({"p0.npy": npy([1.0, 2.0])})
TWO_LEAVES = archive({"p0.npy": npy([1.0, 2.0]), "p1.npy": npy([3.0, 4.0])})
DIRECTORY = TWO_LEAVES.find(CENTRAL)
UNREADABLE = "not an .npz archive"
OVERSIZED = "declares more values than it holds"

FORGED_ARCHIVES: dict[str, tuple[bytes, str]] = {
    # A value's byte changed after its CRC was taken.
    "a bad CRC": (patched(TWO, struct.pack("<d", 2.0)[-2:], flipped), UNREADABLE),
    # Encrypted, patched or strongly encrypted members: zipfile refuses them in its own words.
    "an encrypted member": (flagged(TWO, 0x01), UNREADABLE),
    "a patched member": (flagged(TWO, 0x20), UNREADABLE),
    "a strongly encrypted member": (flagged(TWO, 0x40), UNREADABLE),
    # The directory names p0.npy; the member's own header names another.
    "a member named otherwise in its header": (patched(TWO, LOCAL, put(30, b"q")), UNREADABLE),
    # Both directory entries point at the first member's header (overlapping members).
    "overlapping members": (
        TWO_LEAVES[:DIRECTORY] + patched(TWO_LEAVES[DIRECTORY:], CENTRAL, put(42, bytes(4)), every=True),
        UNREADABLE,
    ),
    # Headers declaring a petabyte of values, or a negative count, over 16 bytes.
    "a member declaring 10**15 values": (archive({"p0.npy": declaring("(1000000000000000,)")}), OVERSIZED),
    "a member declaring a negative shape": (archive({"p0.npy": declaring("(-2,)")}), OVERSIZED),
    # A member declared smaller than it is (the archive's sizes say 10 bytes).
    "a member declared small": (
        patched(patched(TWO, LOCAL, put(22, struct.pack("<I", 10))), CENTRAL, put(24, struct.pack("<I", 10))),
        UNREADABLE,
    ),
    "not an archive": (LOCAL + b"\xff" * 100, UNREADABLE),
}


@pytest.mark.parametrize("name", list(FORGED_ARCHIVES))
def test_a_forged_archive_is_refused_as_unreadable(name: str) -> None:
    payload, message = FORGED_ARCHIVES[name]
    with pytest.raises(ValueError, match=message):
        load_tree(payload, {"tuple": ["p0", "p1"] if "overlapping" in name else ["p0"]})


def test_an_archive_of_a_million_empty_members_is_refused_before_it_is_parsed() -> None:
    entry = CENTRAL + struct.pack("<6H3I5H2I", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a"
    count = 1_000_000
    end = b"PK\x05\x06" + struct.pack("<4H2IH", 0, 0, 0xFFFF, 0xFFFF, count * len(entry), 0, 0)
    with pytest.raises(ValueError, match="more members than its layout names"):
        load_tree(entry * count + end, {"tuple": ["p0"]})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (declaring("(1000000000000000,)"), OVERSIZED),
        (declaring("(100000, 100000, 100000)"), OVERSIZED),
        (declaring("(-2,)"), OVERSIZED),
        (declaring("(2,)", bytes(8)), OVERSIZED),
        (b"\x93NUMPY\x03\x00" + bytes(20), "not a version 1 or 2"),
        (TWO, "magic string"),
    ],
    ids=["1e15 values", "1e15 values in 3 axes", "a negative shape", "cut short", "version 3", "an archive"],
)
def test_a_forged_array_is_refused_as_unreadable(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_array(payload)


def test_a_declared_shape_the_bytes_hold_still_loads() -> None:
    np.testing.assert_array_equal(load_array(declaring("(2,)")), [0.0, 0.0])
    np.testing.assert_array_equal(load_array(declaring("(0, 1000000000000000)")), np.zeros((0, 10**15)))


def structured(value: Any) -> CheckResult:
    """An `ok` record as the runner writes one for this value, dict keys as they are."""
    leaves: dict[str, Any] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {"dict": [[key, walk(child)] for key, child in node.items()]}
        if isinstance(node, tuple | list):
            return {"tuple": [walk(child) for child in node]}
        leaves[f"p{len(leaves)}"] = np.asarray(node, dtype=np.float64)
        return f"p{len(leaves) - 1}"

    layout = walk(value)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **leaves)
    return CheckResult("ok", payload=buffer.getvalue(), layout=layout)


def clean(text: str) -> bool:
    return all(c in "\n" or unicodedata.category(c) not in ("Cc", "Cs") for c in text)


# Dict keys a hostile runner may send (the wire allows any string of 1 to 128 characters).
HOSTILE_KEYS = ["\x00", "\ud800", "\x1b[2J", "x\u202e", *(f"{i:03d}" + "k" * 125 for i in range(200))]


def gradient_line(plan: Plan, name: str, result: CheckResult) -> tuple[float, str]:
    check = next(check for check in config().gradients if check.name == name)
    outcome = gradient_outcome(check, plan.gradients[name], {f"{name}#0": result}, "an exit (0)")
    assert clean(outcome.line)
    assert clean(json.dumps(outcome.details, ensure_ascii=False))
    return outcome.points, outcome.line


def test_a_backward_returning_an_empty_dict_is_named(plan: Plan) -> None:
    points, line = gradient_line(plan, "linear_backward", structured({"backward": {}}))
    assert points == 0.0
    assert "x, W and b" in line


def test_dict_keys_from_the_sandbox_never_reach_the_feedback(plan: Plan) -> None:
    gradients = {key: np.zeros(2) for key in HOSTILE_KEYS}
    points, line = gradient_line(plan, "keyed_backward", structured({"backward": gradients}))
    assert points == 0.0
    assert "kkkk" not in line
    assert len(line) < 400, line
    # The keys due, and one too many.
    want = plan.gradients["keyed_backward"][0].gradients
    extra = {"x": want[0], "W": want[1], "b": want[2], "\x00evil": np.zeros(1)}
    points, line = gradient_line(plan, "keyed_backward", structured({"backward": extra}))
    assert points == 0.0
    assert "evil" not in line


def test_a_gradient_of_zero_values_and_a_huge_shape_costs_no_memory(plan: Plan) -> None:
    wide = np.zeros((0, 10**15))
    points, line = gradient_line(plan, "wide_backward", structured({"backward": (wide, wide, wide)}))
    assert points == 0.0
    assert "has the wrong shape (0, 1000000000000000), not (4, 3) as due" in line


def test_a_faked_autograd_part_earns_nothing(plan: Plan) -> None:
    want = plan.gradients["faked_backward"][0].gradients
    wrong = (-want[0], want[1], want[2])
    # "autograd through your own forward" said to agree with the reference and with the backward.
    for autograd in (want, wrong):
        points, line = gradient_line(
            plan, "faked_backward", structured({"backward": wrong, "autograd": autograd})
        )
        assert points == 0.0
        assert "the gradient for x is wrong: its sign is flipped" in line.lower()


@pytest.mark.parametrize("value", [1.7e308, -1.7e308])
def test_a_gradient_near_the_float64_limit_is_named_wrong(plan: Plan, value: float) -> None:
    huge = tuple(np.full(want.shape, value) for want in plan.gradients["faked_backward"][0].gradients)
    points, line = gradient_line(plan, "faked_backward", structured({"backward": huge, "autograd": huge}))
    assert points == 0.0
    assert "the gradient for x is wrong (shape (4, 3) as due, largest difference 1.7e+308" in line.lower()


def module_line(plan: Plan, result: CheckResult) -> tuple[float, str, dict[str, Any]]:
    check = config().modules[0]
    outcome = module_outcome(check, plan.modules, {"Affine#0": result}, CONTEXT, "an exit (0)")
    assert clean(outcome.line)
    assert clean(json.dumps(outcome.details, ensure_ascii=False))
    return outcome.points, outcome.line, outcome.details


def test_mutated_names_a_module_did_not_take_never_reach_the_feedback(plan: Plan) -> None:
    trial = plan.modules["Affine#0"]
    result = structured({"output": trial.output, "gradients": trial.gradients, "parameters": 12})
    junk = ("x", "All checks passed: 100/100", "y" * 128, *(f"z{i}" for i in range(250)))
    points, line, details = module_line(
        plan, CheckResult("ok", payload=result.payload, layout=result.layout, mutated=junk)
    )
    # The one real argument it changed costs the check (docs/authoring.md); the junk is not quoted.
    assert points == 0.0
    assert "changed its argument x in place" in line, line
    assert "All checks passed" not in line
    assert "z1" not in line
    assert "y" * 128 not in line
    assert details["mutated"] == ["x"]


@pytest.mark.parametrize(
    ("count", "readable"),
    [(1e30, True), (-5.0, True), (1e308, True), (float("nan"), False), (float("inf"), False)],
)
def test_a_forged_parameter_count_is_reported_or_refused(plan: Plan, count: float, readable: bool) -> None:
    trial = plan.modules["Affine#0"]
    points, line, details = module_line(
        plan, structured({"output": trial.output, "gradients": trial.gradients, "parameters": count})
    )
    if readable:
        assert points == 2.0
        assert "Affine has " in line
        json.dumps(details, allow_nan=False)
    else:
        assert points == 0.0
        assert "could not be read" in line


def test_gradients_named_for_parameters_the_reference_lacks_are_ignored(plan: Plan) -> None:
    trial = plan.modules["Affine#0"]
    gradients = {"\x00inner.weight": np.zeros((3, 3)), "weight": trial.gradients["weight"]}
    points, line, _ = module_line(
        plan, structured({"output": trial.output, "gradients": gradients, "parameters": 12})
    )
    assert points == 1.0
    assert "the gradient of bias is missing" in line
    assert "inner" not in line


def test_no_file_of_the_plan_holds_an_expected_value(plan: Plan) -> None:
    """The module's expected output and gradients, the backward's expected gradients (and a
    function's expected value) are in none of the files that enter the sandbox."""
    expected: list[np.ndarray[Any, Any]] = [plan.expected["double#0"][1]]  # type: ignore[list-item]
    module = plan.modules["Affine#0"]
    expected += [module.output, *module.gradients.values()]  # type: ignore[list-item]
    for trials in plan.gradients.values():
        expected += [g for trial in trials for g in (*trial.gradients, *trial.ones_gradients)]
    shipped: list[np.ndarray[Any, Any]] = []
    for name, data in plan.files.items():
        if name == PLAN_FILE:
            shipped.append(np.asarray(numbers_in(json.loads(data)), dtype=np.float64))
        elif not name.endswith(".py"):  # the runner's own wire and calls modules
            with np.load(io.BytesIO(data), allow_pickle=False) as members:
                shipped += [members[member] for member in members.files]
    values = np.concatenate([array.ravel() for array in shipped])
    for want in expected:
        for array in shipped:
            for candidate in (array, -array, array.T):
                assert candidate.shape != want.shape or not np.allclose(candidate, want), (
                    "an expected value ships"
                )
        # Not even one of its values (but whole numbers, which counts and shapes share).
        fractional = want[want != np.round(want)]
        assert not np.isin(np.round(fractional, 9), np.round(values, 9)).any(), "an expected value ships"


def doubled_in_place(x: torch.Tensor) -> torch.Tensor:
    return x.mul_(2)


def test_a_reference_that_changes_its_argument_in_place_does_not_change_the_shipped_inputs() -> None:
    """Reference code may use in-place operations too: the inputs that enter the sandbox (and those
    named mistakes are evaluated on) are the ones drawn, not what the reference's call left."""
    check = {"name": "double", "points": 1, "reference": "doubled_in_place", "inputs": "vector_inputs"}
    checked = get_grader("notebook").parse_config({"functions": [check | {"trials": 1}]})
    assert isinstance(checked, NotebookConfig)
    reference = {**CONTEXT.reference, "doubled_in_place": doubled_in_place}
    built = build_plan(checked, GradingContext(variant_seed=14, reference=reference), "cpu")
    inputs, want = built.expected["double#0"]
    with np.load(io.BytesIO(built.files["double-0.npz"]), allow_pickle=False) as shipped:
        np.testing.assert_array_equal(shipped["x"], inputs["x"])
    np.testing.assert_allclose(want, 2 * inputs["x"])  # type: ignore[arg-type]


class ReferenceAffineInPlace(ReferenceAffine):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(2) @ self.weight + self.bias


def test_a_reference_module_that_changes_its_argument_in_place_does_not_change_the_shipped_inputs() -> None:
    module = {"name": "Affine", "points": 1, "init": {"features": 3}, "reference": "ReferenceAffineInPlace",
              "inputs": "affine_inputs", "trials": 1}  # fmt: skip
    checked = get_grader("notebook").parse_config({"modules": [module]})
    assert isinstance(checked, NotebookConfig)
    reference = {**CONTEXT.reference, "ReferenceAffineInPlace": ReferenceAffineInPlace}
    built = build_plan(checked, GradingContext(variant_seed=14, reference=reference), "cpu")
    trial = built.modules["Affine#0"]
    with np.load(io.BytesIO(built.files["Affine-0.npz"]), allow_pickle=False) as shipped:
        x, weight, bias = shipped["a0"], shipped["p0"], shipped["p1"]
    np.testing.assert_allclose(trial.output, (2 * x) @ weight + bias, rtol=1e-5)  # type: ignore[arg-type]


def numbers_in(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for child in value.values() for n in numbers_in(child)]
    if isinstance(value, list):
        return [n for child in value for n in numbers_in(child)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


# --- Hostile notebooks: each attacks every check at once; three sandbox runs in all.

AFFINE = """
class Affine(torch.nn.Module):
    def __init__(self, features):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(features, features))
        self.bias = torch.nn.Parameter(torch.zeros(features))

    def forward(self, x):
        return x @ self.weight + self.bias
"""

STRANGE_RETURNS = (
    "import torch\n"
    + AFFINE.replace("return x @ self.weight + self.bias", "return torch.zeros(0, 10**15) + self.bias.sum()")
    + """
def double(x):
    # A dict with hostile keys where one tensor is due.
    return {"\\x00": x, "\\x1b[2J": x, "k" * 128: x}

def my_forward(x, W, b):
    return x @ W + b

def linear_backward(dy, x, W, b):
    return {}

def wide_backward(dy, x, W, b):
    wide = torch.zeros(0, 10**15)
    return wide, wide, wide

def keyed_backward(dy, x, W, b):
    return {"\\x00": dy, "\\x1b[2J": dy, **{f"{i:03d}" + "k" * 125: dy for i in range(200)}}

def faked_backward(dy, x, W, b):
    return -(dy @ W.T), x.T @ dy, dy.sum(0)
"""
)

# Right answers (but faked_backward's sign), and the record of every check rewritten on its way
# out: forged archives, forged `mutated` names, and autograd through the notebook's forward
# replaced by the backward's own gradients (to fake their agreement).
FORGED_RECORDS = (
    "import torch\n"
    + AFFINE
    + """
def double(x):
    return 2 * x

def my_forward(x, W, b):
    return x @ W + b

def linear_backward(dy, x, W, b):
    return dy @ W.T, x.T @ dy, dy.sum(0)

wide_backward = keyed_backward = linear_backward

def faked_backward(dy, x, W, b):
    return -(dy @ W.T), x.T @ dy, dy.sum(0)
"""
    + textwrap.dedent(
        """
        import io, struct, sys, zipfile, numpy as np

        runner = sys.modules["__main__"]
        real_write = runner.write_result

        def member(shape):
            header = ("{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % (shape,)).encode()
            header += b" " * (63 - (10 + len(header)) % 64) + b"\\n"
            return b"\\x93NUMPY\\x01\\x00" + struct.pack("<H", len(header)) + header + b"\\0" * 16

        def archive(**members):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as zipped:
                for name, data in members.items():
                    zipped.writestr(name + ".npy", data)
            return bytearray(buffer.getvalue())

        def forged(name, outcome):
            if name == "double":  # a bad CRC
                data = archive(p0=member((2,)))
                data[data.find(b"\\0" * 16)] ^= 1
                return bytes(data), {"tuple": ["p0"]}
            if name == "linear_backward":  # a petabyte declared in 16 bytes
                data = archive(p0=member((10**15,)), p1=member((2,)), p2=member((2,)))
                return bytes(data), {"dict": [["backward", {"tuple": ["p0", "p1", "p2"]}]]}
            if name == "wide_backward":  # an encrypted member
                data = archive(p0=member((2,)), p1=member((2,)), p2=member((2,)))
                for signature, offset in ((b"PK\\x03\\x04", 6), (b"PK\\x01\\x02", 8)):
                    data[data.find(signature) + offset] |= 1
                return bytes(data), {"dict": [["backward", {"tuple": ["p0", "p1", "p2"]}]]}
            return outcome.payload, outcome.layout

        def write_result(fd, outcome):
            if isinstance(outcome, calls.Result):
                name = sys._getframe(1).f_locals["check"]["name"]
                outcome.payload, outcome.layout = forged(name, outcome)
                junk = ("All checks passed: 100/100", "\\x1b[2J" * 20, *(f"z{i}" for i in range(250)))
                outcome.mutated = ("x", *junk)
            real_write(fd, outcome)

        runner.write_result = write_result
        # "Autograd through the notebook's forward": the backward's own gradients.
        calls = sys.modules["autograde_calls"]
        calls.own_autograd = lambda check, names, arguments, dy: names[check["name"]](dy, *arguments)
        """
    )
)

# Right answers that change their arguments in place: each is named, and no later check (the
# same backward again, on the same inputs) is disturbed by it.
IN_PLACE = (
    "import torch\n"
    + AFFINE.replace(
        "return x @ self.weight + self.bias",
        "output = x.clone() @ self.weight + self.bias\n        x.mul_(0.0)\n        return output",
    )
    + """
def double(x):
    result = 2 * x
    x.zero_()
    return result

def my_forward(x, W, b):
    return x @ W + b

def linear_backward(dy, x, W, b):
    return dy @ W.T, x.T @ dy, dy.sum(0)

wide_backward = keyed_backward = faked_backward = linear_backward
"""
)

NOTEBOOKS = {"strange returns": STRANGE_RETURNS, "forged records": FORGED_RECORDS, "in place": IN_PLACE}

needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")


@pytest.fixture(scope="module")
def graded() -> Iterator[dict[str, GradeResult]]:
    checked = config()
    grader = get_grader("notebook")
    grader.self_check(checked, CONTEXT)

    def grade(cells: str) -> GradeResult:
        return grader.grade_raw_answer(checked, answer_for(notebook_text([cells])), CONTEXT)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(grade, cells) for name, cells in NOTEBOOKS.items()}
        yield {name: future.result() for name, future in futures.items()}


def check_line(result: GradeResult, name: str) -> str:
    return next(line for line in result.feedback.splitlines() if line.startswith(f"{name}: "))


def points_of(result: GradeResult) -> dict[str, float]:
    checks: dict[str, dict[str, float]] = result.details["checks"]  # type: ignore[assignment]
    return {name: check["points"] for name, check in checks.items()}


@needs_bwrap
@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_a_hostile_notebook_is_graded_with_clean_bounded_feedback(
    graded: dict[str, GradeResult], name: str
) -> None:
    result = graded[name]
    assert result.verdict is not Verdict.ERROR, result.details
    assert clean(result.feedback), result.feedback
    assert clean(json.dumps(result.details, ensure_ascii=False))
    assert all(len(line) < 1000 for line in result.feedback.splitlines()), result.feedback
    assert "kkkk" not in result.feedback
    assert "100/100" not in result.feedback


@needs_bwrap
def test_strange_returns_earn_nothing_and_are_named(graded: dict[str, GradeResult]) -> None:
    result = graded["strange returns"]
    assert points_of(result) == dict.fromkeys(["double", "Affine", *GRADIENTS], 0.0), result.feedback
    assert "x, W and b" in check_line(result, "linear_backward")
    assert "(0, 1000000000000000)" in check_line(result, "wide_backward")
    assert "(0, 1000000000000000)" in check_line(result, "Affine")


@needs_bwrap
def test_forged_records_earn_nothing_they_forge(graded: dict[str, GradeResult]) -> None:
    result = graded["forged records"]
    earned = points_of(result)
    for forged in ("double", "linear_backward", "wide_backward"):
        assert earned[forged] == 0.0
        assert "could not be read" in check_line(result, forged), check_line(result, forged)
    # Right values with forged `mutated` names: only a name the call really took is named (and
    # claiming it costs the forger the check, as a real in-place change would).
    assert earned["Affine"] == 0.0, check_line(result, "Affine")
    assert "Affine.forward changed its argument x in place" in check_line(result, "Affine")
    assert "All checks passed" not in result.feedback
    assert earned["keyed_backward"] == 0.0
    assert "changed its argument x in place" in check_line(result, "keyed_backward")
    # A wrong backward said to agree with autograd through the notebook's forward earns nothing.
    assert earned["faked_backward"] == 0.0
    assert "its sign is flipped" in check_line(result, "faked_backward")


@needs_bwrap
def test_in_place_changes_are_named_and_disturb_no_other_check(graded: dict[str, GradeResult]) -> None:
    result = graded["in place"]
    earned = points_of(result)
    assert earned["double"] == 0.0  # changing an argument costs a function check its points
    assert "double changed its argument x in place" in check_line(result, "double")
    assert earned["Affine"] == 0.0  # and a module check's (docs/authoring.md)
    assert "Affine.forward changed its argument x in place" in check_line(result, "Affine")
    # The checks after them got fresh arguments: right answers earn their points.
    assert [earned[name] for name in GRADIENTS] == [1.0] * len(GRADIENTS), result.feedback
