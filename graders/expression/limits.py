"""Bounds that keep a hostile answer cheap: checked before and during parsing and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from graders.expression.errors import LimitExceeded

OPENERS = "([{"
CLOSERS = ")]}"


@dataclass(frozen=True, slots=True)
class Limits:
    max_length: int = 2_000
    max_nesting: int = 40
    max_nodes: int = 400
    max_range: int = 64  # terms in one sum or product
    # Node evaluations (each over all points) for one evaluation: the costliest answer of the notation
    # corpus takes 77, and each costs ~15 µs, so a hostile answer stops within ~15 ms.
    max_steps: int = 1_000
    # The search for named mistakes (diagnose._search): node evaluations and candidate repairs
    # tried, in all; sized so that an answer no repair explains costs < 25 ms more.
    max_diagnosis_steps: int = 1_500
    max_diagnosis_evaluations: int = 60
    max_exponent: float = 64.0  # |exponent| of **
    max_bound_variables: int = 8  # distinct names bound by the sums and products of one answer
    max_sides: int = 12  # sides of a derivation `a = b = c`, the answer included
    max_derivation_steps: int = 600  # node evaluations for all sides of a derivation together


DEFAULT_LIMITS = Limits()


def check_source(text: str, limits: Limits) -> None:
    """Refuse over-long or over-nested input before a parser sees it."""
    if len(text) > limits.max_length:
        raise LimitExceeded(f"The answer is {len(text)} characters long; the limit is {limits.max_length}.")
    if sum(text.count(opener) for opener in OPENERS) <= limits.max_nesting:
        return  # too few brackets to nest too deep: no need to walk the characters in Python
    depth = 0
    for position, character in enumerate(text):
        if character in OPENERS:
            depth += 1
            if depth > limits.max_nesting:
                raise LimitExceeded(
                    f"Brackets are nested more than {limits.max_nesting} deep (at character {position + 1}).",
                    position,
                )
        elif character in CLOSERS:
            depth = max(0, depth - 1)


class StepBudget:
    """Node evaluations left; evaluation stops with LimitExceeded when they run out."""

    def __init__(self, steps: int) -> None:
        self.remaining = steps

    def spend(self) -> None:
        self.remaining -= 1
        if self.remaining < 0:
            raise LimitExceeded("The answer takes too much work to evaluate.")


def derivation_sides(text: str, limits: Limits = DEFAULT_LIMITS) -> list[tuple[int, str]]:
    """`a = b = c` → [(0, a), (start of b, b), (start of c, c)]: splits at each `=` outside brackets.

    Refuses more than `limits.max_sides` sides before any of them is parsed.
    """
    if "=" not in text:
        return [(0, text)]  # the common case, without walking the characters in Python
    sides: list[tuple[int, str]] = []
    depth = 0
    start = 0
    for position, character in enumerate(text):
        if character in OPENERS:
            depth += 1
        elif character in CLOSERS:
            depth -= 1
        elif character == "=" and depth == 0:
            if len(sides) + 1 >= limits.max_sides:
                raise LimitExceeded(
                    f"The derivation has more than {limits.max_sides} sides; write at most "
                    f"{limits.max_sides - 1} steps.",
                    position,
                )
            sides.append((start, text[start:position]))
            start = position + 1
    sides.append((start, text[start:]))
    return sides
