"""Part-by-part comparison of a structured value (a tuple, list or dict of tensors) with the
expected one, outside the sandbox: which parts are right, which are wrong and why, in words a
student can act on ("dW has the wrong shape (2, 3), not (3, 2) as due; dx and db are right").

Shared by every check whose value may be structured: function checks (`_compare.py`), and the
forward outputs of module checks and the gradients of gradient checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np

from graders.notebook._compare import FloatArray, Tree, describe

# "right", or why a part is wrong: its shape, NaN or infinite values, its values, or it is missing.
PartStatus: TypeAlias = Literal["right", "shape", "nonfinite", "values", "missing"]
# (rtol, atol) for a top-level part, by its name.
ToleranceFor: TypeAlias = Callable[[str], tuple[float, float]]
# How many wrong or right parts feedback names before it says "and N more".
MAX_NAMED_PARTS = 8


@dataclass(frozen=True, slots=True)
class PartResult:
    # The part as feedback names it: "dW", "grads.weight", "state[1]"; "" for a single tensor.
    name: str
    # The top-level part it belongs to (its tolerance and its share of the points go by it).
    group: str
    status: PartStatus
    # Why it is wrong, after its name ("is wrong (shape (3, 2) as due, ...)"); "" when right.
    reason: str = ""
    # The largest absolute difference from the expected value, when shapes matched.
    max_abs_error: float | None = None


@dataclass(frozen=True, slots=True)
class PartsComparison:
    """One value against the expected one. `structure` says why the two could not be matched part
    by part at all (then `parts` is empty); otherwise each expected leaf has its PartResult."""

    structure: str
    parts: tuple[PartResult, ...]
    # Every top-level part, in order (a structure error leaves them all wrong).
    groups: tuple[str, ...]

    @property
    def all_right(self) -> bool:
        return not self.structure and all(part.status == "right" for part in self.parts)

    @property
    def wrong_parts(self) -> list[PartResult]:
        return [part for part in self.parts if part.status != "right"]

    @property
    def right_groups(self) -> list[str]:
        """The top-level parts all of whose leaves are right."""
        if self.structure:
            return []
        wrong = {part.group for part in self.wrong_parts}
        return [group for group in self.groups if group not in wrong]

    def phrase(self) -> str:
        """What is wrong, for feedback: "" when all is right."""
        if self.structure:
            return self.structure
        wrong = self.wrong_parts
        if not wrong:
            return ""
        if len(self.parts) == 1 and not self.parts[0].name:
            return wrong[0].reason  # a single tensor: no part to name
        named = [f"{part.name} {part.reason}" for part in wrong[:MAX_NAMED_PARTS]]
        if len(wrong) > MAX_NAMED_PARTS:
            named.append(f"{len(wrong) - MAX_NAMED_PARTS} more parts are wrong")
        right = [part.name for part in self.parts if part.status == "right"]
        if right:
            shown = right[:MAX_NAMED_PARTS] + (
                [f"{len(right) - MAX_NAMED_PARTS} more"] if len(right) > MAX_NAMED_PARTS else []
            )
            named.append(f"{join_names(shown)} {'is' if len(right) == 1 else 'are'} right")
        return "; ".join(named) + "."


def compare_parts(
    given: Tree, want: Tree, names: Sequence[str] | None, tolerance_for: ToleranceFor, *, whole: str = ""
) -> PartsComparison:
    """`given` against `want`, leaf by leaf: a tuple's or list's parts by position (named by
    `names` when given, else "[0]", "[1]" ...), a dict's by key; a tuple and a list stand for
    each other. Each top-level part is compared with `tolerance_for(its name)`. `whole` names a
    single tensor like a part ("the forward output is wrong (...)"); without it, a single tensor
    keeps the function check's wording ("wrong values: ...")."""
    if isinstance(want, np.ndarray):
        rtol, atol = tolerance_for("")
        if not isinstance(given, np.ndarray):
            return PartsComparison(f"returned {describe(given)}, expected {describe(want)}.", (), ("",))
        leaf = _compare_leaf(whole, "", given, want, rtol, atol, single=not whole)
        return PartsComparison("", (leaf,), ("",))
    top = _children(want, names)
    groups = tuple(name for name, _ in top)
    parts: list[PartResult] = []
    structure = _walk(given, want, "", None, names, tolerance_for, parts)
    return PartsComparison(structure, () if structure else tuple(parts), groups)


def _walk(
    given: Tree,
    want: Tree,
    path: str,
    group: str | None,
    names: Sequence[str] | None,
    tolerance_for: ToleranceFor,
    parts: list[PartResult],
) -> str:
    """Compare a structure's children, appending to `parts`; returns a structure error or ""."""
    where = f" for {path}" if path else ""
    if isinstance(want, np.ndarray):
        assert group is not None
        if not isinstance(given, np.ndarray):
            parts.append(
                PartResult(path, group, "shape", f"is {describe(given)}, not {describe(want)} as due")
            )
            return ""
        rtol, atol = tolerance_for(group)
        parts.append(_compare_leaf(path, group, given, want, rtol, atol, single=False))
        return ""
    if isinstance(want, dict):
        if not isinstance(given, dict):
            return f"returned {describe(given)}{where}, expected a dict with keys {join_names(list(want))}."
        for key, child in want.items():
            child_path = _join(path, key)
            child_group = group if group is not None else key
            if key not in given:
                parts.extend(
                    PartResult(name, child_group, "missing", f"is missing (no key {key!r} in the dict)")
                    for name in _leaf_names(child, child_path)
                )
                continue
            if error := _walk(given[key], child, child_path, child_group, None, tolerance_for, parts):
                return error
        return ""
    if not isinstance(given, tuple | list) or len(given) != len(want):
        kind = "tuple" if isinstance(want, tuple) else "list"
        due = f"a {kind} of {len(want)} parts" + (f" ({join_names(list(names))})" if names else "")
        return f"returned {describe(given)}{where} where {due} {'was' if len(want) == 1 else 'were'} due."
    for (name, child), given_child in zip(_children(want, names), given, strict=True):
        child_path = _join(path, name)
        child_group = group if group is not None else name
        if error := _walk(given_child, child, child_path, child_group, None, tolerance_for, parts):
            return error
    return ""


def _children(want: Tree, names: Sequence[str] | None) -> list[tuple[str, Tree]]:
    if isinstance(want, dict):
        return list(want.items())
    if isinstance(want, np.ndarray):
        return [("", want)]
    if names is not None and len(names) == len(want):
        return list(zip(names, want, strict=True))
    return [(f"[{index}]", child) for index, child in enumerate(want)]


def _leaf_names(tree: Tree, path: str) -> list[str]:
    if isinstance(tree, np.ndarray):
        return [path]
    return [
        name
        for child_name, child in _children(tree, None)
        for name in _leaf_names(child, _join(path, child_name))
    ]


def _join(path: str, name: str) -> str:
    """A child's name under its parent's: "grads.weight", "state[1]"; a top-level part's own."""
    if not path:
        return name
    return f"{path}{name}" if name.startswith("[") else f"{path}.{name}"


def _compare_leaf(
    name: str, group: str, given: FloatArray, want: FloatArray, rtol: float, atol: float, *, single: bool
) -> PartResult:
    """One tensor against its expected value. A single tensor keeps the check's long-standing
    wording ("wrong shape: ...", "wrong values: ..."); a part's reads after its name."""
    if want.shape == () and given.size == 1:
        given = given.reshape(())  # a scalar may come back as a 1-element tensor
    if given.shape != want.shape:
        transposed = given.ndim == 2 and given.T.shape == want.shape and _close(given.T, want, rtol, atol)
        hint = "; it is the transpose of the right value" if transposed else ""
        if single:
            reason = f"wrong shape: expected {tuple(want.shape)}, got {tuple(given.shape)}{hint}."
        else:
            reason = f"has the wrong shape {tuple(given.shape)}, not {tuple(want.shape)} as due{hint}"
        return PartResult(name, group, "shape", reason)
    if not np.all(np.isfinite(given)):
        reason = "the result holds NaN or infinite values." if single else "holds NaN or infinite values"
        return PartResult(name, group, "nonfinite", reason)
    if _close(given, want, rtol, atol):
        return PartResult(name, group, "right")
    error = float(np.max(np.abs(given - want)))
    transposed = given.ndim == 2 and given.shape[0] == given.shape[1] and _close(given.T, want, rtol, atol)
    hint = "; it is the transpose of the right value" if transposed else ""
    if single:
        reason = f"wrong values: the largest difference is {error:.3g} (atol {atol:g}, rtol {rtol:g}){hint}."
    else:
        shape = f"shape {tuple(want.shape)} as due, " if want.ndim else ""
        reason = f"is wrong ({shape}largest difference {error:.3g}, atol {atol:g}, rtol {rtol:g}{hint})"
    return PartResult(name, group, "values", reason, error)


def _close(given: FloatArray, want: FloatArray, rtol: float, atol: float) -> bool:
    return bool(np.all(np.isfinite(given))) and bool(np.allclose(given, want, rtol=rtol, atol=atol))


def join_names(names: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c" (for feedback; "none" for no names)."""
    if len(names) <= 1:
        return "".join(names) or "none"
    return f"{', '.join(names[:-1])} and {names[-1]}"


def merge_trials(comparisons: Sequence[PartsComparison]) -> PartsComparison:
    """Several trials' comparisons as one: a structure error if any trial had one, else each part
    as the first trial that found it wrong saw it (a part is right only if right in every trial)."""
    for comparison in comparisons:
        if comparison.structure:
            return comparison
    first = comparisons[0]
    merged: dict[str, PartResult] = {part.name: part for part in first.parts}
    for comparison in comparisons[1:]:
        for part in comparison.parts:
            if merged.get(part.name, part).status == "right":
                merged[part.name] = part
    return PartsComparison("", tuple(merged.values()), first.groups)
