"""The worker queues. A question names the one it needs (its resource class); its submission's job
goes to gpu if any question needs it. Here, beside the models, so the worker, grading, assignments
and submissions can all import it without a cycle."""

from __future__ import annotations

from enum import StrEnum


class Queue(StrEnum):
    CPU = "cpu"
    GPU = "gpu"
