"""bench/gpu.py: without CUDA, one line saying why it skipped, and success; and its rehearsal (the
CPU standing in for CUDA) runs every step, so the script works when a GPU machine is at hand.

With CUDA the script runs for minutes (it is the benchmark itself), so the skip test is skipped there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script is the benchmark: minutes")
def test_without_cuda_the_gpu_benchmark_skips_with_a_clear_message() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "bench/gpu.py: skipped: CUDA is not available here (torch.cuda.is_available() is False)"
    ]
    assert done.stderr == ""


@pytest.mark.slow
def test_the_rehearsal_grades_on_both_devices_and_through_the_gpu_queue() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--rehearse", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "results agree: yes" in done.stdout
    assert "| hw5 q4 as a gpu question, 1 timed |" in done.stdout
