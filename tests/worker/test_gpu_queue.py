"""Which queues a grading process claims: gpu jobs wait for a GPU worker only when told to."""

from __future__ import annotations

import pytest
import torch

from service.config import Settings
from service.worker.local import claimable_queues


def test_without_cuda_gpu_jobs_fall_back_to_cpu_by_default() -> None:
    assert claimable_queues(Settings()) == ("cpu", "gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU worker claims the gpu queue in any case")
def test_without_cuda_gpu_jobs_can_wait_for_a_gpu_worker() -> None:
    assert claimable_queues(Settings(gpu_fallback="wait")) == ("cpu",)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_worker_claims_the_gpu_queue() -> None:
    assert claimable_queues(Settings(gpu_fallback="wait")) == ("cpu", "gpu")
