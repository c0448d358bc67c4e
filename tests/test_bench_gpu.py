"""bench/gpu.py on a machine without CUDA: one line saying why it skipped, and success.

With CUDA the script runs for minutes (it is the benchmark itself), so this test is skipped there."""

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
