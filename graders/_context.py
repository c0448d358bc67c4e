"""What the caller hands a grader besides the answer: the reference functions and the variant seed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Functions from the instructor's reference module, looked up by the names a question config gives.
ReferenceFunctions = Mapping[str, Callable[..., Any]]


@dataclass(frozen=True, slots=True)
class GradingContext:
    variant_seed: int = 0
    reference: ReferenceFunctions = field(default_factory=dict)
    # How graders that run student code (notebook) do it: "bwrap" or "unsafe-dev" (no isolation).
    sandbox_mode: str = "bwrap"
    # The torch device student functions are called on: "cpu", or "cuda" on a GPU worker.
    device: str = "cpu"

    def reference_function(self, name: str) -> Callable[..., Any]:
        try:
            return self.reference[name]
        except KeyError:
            raise LookupError(f"the reference module defines no function {name!r}") from None


def derive_variant_seed(secret: str, assignment: str, question: str, student: str) -> int:
    """A per-student seed that students cannot compute for one another (keyed by a server secret)."""
    message = f"{assignment}\x1f{question}\x1f{student}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")
