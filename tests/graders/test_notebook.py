"""The notebook grader on hw5 Q4: the solution scores 10/10, one wrong function loses its points only."""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from graders import Verdict
from graders.notebook._session import read_check_result
from graders.sandbox import PipeRead, Zygotes
from tests.graders.notebooks import HW5, Q4, load_q4, notebook_text, solution_cells, with_function

UNSCALED_ATTENTION = """def attention(q, K, V):
    return torch.softmax(q @ K.transpose(-2, -1), dim=-1) @ V"""

RELU_RNN = """def rnn_forward(x, h0, W_hh, W_xh, b):
    h, states = h0, []
    for x_t in x:
        h = torch.relu(x_t @ W_xh + h @ W_hh + b)
        states.append(h)
    return torch.stack(states)"""

BPTT_MISSING_STEP = """def bptt_grad_w_hh(x, y, h0, w_hh, w_hx, w_yh):
    w = w_hh.clone().requires_grad_(True)
    h, loss = h0, 0.0
    for t in range(x.shape[0] - 1):  # the last step is missing
        h = torch.tanh(w * h + w_hx * x[t])
        loss = loss - (y[t] * torch.log_softmax(w_yh * h, dim=0)).sum()
    loss.backward()
    return w.grad"""

HANGING_ATTENTION = """def attention(q, K, V):
    while True:
        pass"""


@pytest.fixture(scope="module")
def q4() -> Q4:
    return load_q4()


def test_solution_scores_full_marks(q4: Q4) -> None:
    result = q4.grade(notebook_text(solution_cells()))
    assert result.verdict is Verdict.CORRECT, result.feedback
    assert result.fraction == 1.0
    checks = result.details["checks"]
    assert {name: check["points"] for name, check in checks.items()} == {
        "rnn_forward": 2.0,
        "attention": 2.0,
        "bptt_grad_w_hh": 2.0,
        "model": 4.0,
    }
    assert checks["model"]["accuracy"] >= 0.9
    for name in ("rnn_forward", "attention", "bptt_grad_w_hh", "model"):
        assert f"{name}: " in result.feedback


@pytest.mark.parametrize(
    ("function", "source", "hint"),
    [
        ("attention", UNSCALED_ATTENTION, "sqrt(d)"),
        ("rnn_forward", RELU_RNN, "tanh"),
        ("bptt_grad_w_hh", BPTT_MISSING_STEP, "last time step"),
    ],
)
def test_one_wrong_function_loses_exactly_its_points(q4: Q4, function: str, source: str, hint: str) -> None:
    result = q4.grade(notebook_text(with_function(solution_cells(), function, source)))
    assert result.verdict is Verdict.PARTIAL
    assert result.fraction == pytest.approx(0.8)
    checks = result.details["checks"]
    assert checks[function]["points"] == 0.0
    assert all(check["points"] == check["max_points"] for name, check in checks.items() if name != function)
    line = next(line for line in result.feedback.splitlines() if line.startswith(f"{function}: "))
    assert "0/2" in line
    assert "wrong values" in line
    assert hint in line


def test_a_hanging_function_costs_only_its_own_points(q4: Q4) -> None:
    config = q4.config.model_copy(
        update={"functions": [c.model_copy(update={"seconds": 2.0}) for c in q4.config.functions]}
    )
    result = q4.grade(notebook_text(with_function(solution_cells(), "attention", HANGING_ATTENTION)), config)
    assert result.fraction == pytest.approx(0.8)
    assert result.details["checks"]["attention"]["status"] == "timeout"
    assert "attention: 0/2 - did not return within 2 s" in result.feedback


def test_a_cell_error_is_reported_and_earlier_definitions_still_count(q4: Q4) -> None:
    cells = solution_cells()
    cells.insert(2, "raise ValueError('oops')")  # after rnn_forward, before attention
    result = q4.grade(notebook_text(cells))
    assert "Cell 3 raised ValueError: oops" in result.feedback
    assert result.details["checks"]["rnn_forward"]["points"] == 2.0
    assert result.details["checks"]["attention"]["status"] == "error"
    assert "defines no 'attention'" in result.feedback


def test_magics_and_shell_escapes_are_skipped(q4: Q4) -> None:
    cells = ["%matplotlib inline\n!pip install nothing", "%%time\nraise SystemExit", *solution_cells()]
    assert q4.grade(notebook_text(cells)).fraction == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("this is not json", "not a Jupyter notebook"),
        ("[1, 2]", "not a Jupyter notebook"),
        (
            '{"cells": [{"cell_type": "code", "metadata": {}, "source": 5, "outputs": [], '
            '"execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}',
            "nbformat 4 schema",
        ),
        ("x" * 6_000_000, "larger than"),
    ],
)
def test_a_broken_notebook_is_invalid_with_a_message(q4: Q4, content: str, message: str) -> None:
    result = q4.grade(content)
    assert result.verdict is Verdict.INVALID
    assert message in result.feedback


def test_shipped_training_data_is_what_the_grader_generates(q4: Q4) -> None:
    shipped = np.load(HW5 / "data" / "train.npz", allow_pickle=False)
    generated = q4.context.reference_function("training_set")()
    assert shipped["X"].shape == (4000, 20)
    np.testing.assert_array_equal(shipped["X"], generated["X"])
    np.testing.assert_array_equal(shipped["y"], generated["y"])
    half = shipped["X"][:, :10].sum(axis=1) > shipped["X"][:, 10:].sum(axis=1)
    np.testing.assert_array_equal(shipped["y"], half.astype(int))


def record(header: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(header)) + header + payload


@pytest.mark.parametrize(
    ("data", "seconds", "status", "message"),
    [
        (record(b'{"status": "ok", "payload_bytes": 3}', b"abc"), 0.1, "ok", ""),
        (record(b'{"status": "error", "error": "Boom\\u0000!", "payload_bytes": 0}'), 0.1, "error", "Boom!"),
        (b"", 0.1, "error", "without a result"),
        (b"", 5.0, "timeout", "did not return within 3 s"),
        (record(b'{"status": "ok", "payload_bytes": 9}', b"abc"), 0.1, "invalid", "exactly one record"),
        (record(b'{"status": "ok", "payload_bytes": 0}') * 2, 0.1, "invalid", "exactly one record"),
        (record(b'{"status": "ok", "payload_bytes": NaN}'), 0.1, "invalid", "NaN"),
        (record(b'{"status": "ok", "payload_bytes": 1e999}'), 0.1, "invalid", "out of range"),
        (record(b"[" * 50_000 + b"]" * 50_000), 0.1, "invalid", "could not be read"),
        (record(b'{"status": "ok", "payload_bytes": 0, "score": 1}'), 0.1, "invalid", "not a result header"),
        (b"\xff\xff\xff\xff" + b"x" * 100, 0.1, "invalid", "cut short"),
        (record(b'{"status": "correct", "payload_bytes": 0}'), 0.1, "invalid", "unknown status"),
    ],
)
def test_a_check_result_is_one_strict_record(data: bytes, seconds: float, status: str, message: str) -> None:
    result = read_check_result(PipeRead(data, ended=True, overflowed=False, seconds=seconds), 3.0)
    assert (result.status, message in result.message) == (status, True), result
    assert "\x00" not in result.message


def test_an_unfinished_or_oversized_check_result_is_not_read() -> None:
    whole = record(b'{"status": "ok", "payload_bytes": 0}')
    assert (
        read_check_result(PipeRead(whole, ended=False, overflowed=False, seconds=3.5), 3.0).status
        == "timeout"
    )
    assert (
        read_check_result(PipeRead(whole, ended=True, overflowed=True, seconds=0.1), 3.0).status == "invalid"
    )


LEAVE_TRACES = """
import os, sys, numpy, torch
print("ESCAPED" if any(os.path.exists(p) for p in ("/work/trace", "/tmp/trace")) else "clean files")
leaked = hasattr(numpy, "trace_of_earlier_run") or "trace_module" in sys.modules
print("ESCAPED" if leaked else "clean modules")
open("/work/trace", "w").write("x")
open("/tmp/trace", "w").write("x")
numpy.trace_of_earlier_run = True
sys.modules["trace_module"] = sys
"""


def test_warm_runs_share_nothing_with_earlier_runs(q4: Q4) -> None:
    content = notebook_text([LEAVE_TRACES])
    runs = [q4.grade(content) for _ in range(3)]
    sandboxes = [run.details["sandbox"] for run in runs]
    # Forked from the grader's fork server where this process can isolate its children (root and
    # cgroups, as on CI and in the worker image); fresh sandboxes elsewhere.
    assert [sandbox["warm"] for sandbox in sandboxes] == [Zygotes.possible()] * 3
    for sandbox in sandboxes:
        assert "clean files\nclean modules" in sandbox["output_tail"]
        assert "ESCAPED" not in sandbox["output_tail"]


def test_without_bubblewrap_notebooks_are_refused_with_a_clear_error(
    q4: Q4, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = q4.grade(notebook_text(solution_cells()))
    assert result.verdict is Verdict.ERROR
    assert "bubblewrap" in result.feedback
    assert "AUTOGRADE_SANDBOX=unsafe-dev" in result.feedback


def test_unsafe_dev_mode_runs_without_the_sandbox_and_warns(q4: Q4, caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace

    unsafe = Q4(q4.config, replace(q4.context, sandbox_mode="unsafe-dev"))
    assert unsafe.grade(notebook_text(solution_cells())).fraction == 1.0
    assert "UNSAFE" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_solution_scores_full_marks_on_cuda(q4: Q4) -> None:
    from dataclasses import replace

    cuda = Q4(q4.config, replace(q4.context, device="cuda"))
    result = cuda.grade(notebook_text(solution_cells()))
    assert result.fraction == 1.0, result.feedback
    assert result.details["sandbox"]["device"] == "cuda"


SHOW_INPUT_PERMISSIONS = """
import os, stat
for path in ["/input"] + ["/input/" + name for name in sorted(os.listdir("/input"))]:
    info = os.stat(path)
    mine = "own" if info.st_uid == os.getuid() else f"uid {info.st_uid}"
    print(f"PERMISSIONS {path} {stat.S_IMODE(info.st_mode):o} {mine}")
"""


def test_a_runs_inputs_are_private_to_its_own_uid(q4: Q4) -> None:
    output = q4.grade(notebook_text([SHOW_INPUT_PERMISSIONS])).details["sandbox"]["output_tail"]
    lines = [line.split() for line in output.splitlines() if line.startswith("PERMISSIONS")]
    assert len(lines) > 3, output
    assert lines[0][1:] == ["/input", "700", "own"]
    for _, path, mode, owner in lines[1:]:
        assert (mode, owner) == ("600", "own"), path


def test_reference_modules_are_private_to_this_process(q4: Q4) -> None:
    path = Path(q4.context.reference_function("training_set").__code__.co_filename)
    assert path.parent.name.startswith("autograde-reference-")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.parent.stat().st_uid == os.geteuid()


UNSTORABLE_TEXT = [
    "import sys\nsys.stdout.buffer.write(b'a\\x00b\\x1b[2Jc\\x07\\xed\\xa0\\x80d\\n')\nsys.stdout.flush()",
    "def rnn_forward(*a):\n    raise ValueError('bad\\x00value\\x1b[31m')",
    "raise RuntimeError('cell\\x00error\\x1b]0;title\\x07\\ud800')",
]


def test_text_from_the_sandbox_is_storable(q4: Q4) -> None:
    """NULs, terminal escapes and lone surrogates in output and exception messages never reach
    the feedback or the details, and the details hold no NaN."""
    result = q4.grade(notebook_text(UNSTORABLE_TEXT))
    stored = json.dumps({"feedback": result.feedback, "details": result.details}, allow_nan=False)
    stored.encode("utf-8")  # no lone surrogate either
    for character in ("\\u0000", "\\u001b", "\\u0007", "\\ud800"):
        assert character not in stored
    assert "Cell 3 raised RuntimeError: cellerror]0;title" in result.feedback
    assert "raised ValueError: badvalue[31m" in result.feedback
    assert "ab[2Jc" in result.details["sandbox"]["output_tail"]  # type: ignore[index,operator]
