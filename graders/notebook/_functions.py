"""Stage 2 for function checks, outside the sandbox: each trial's returned value (one tensor, or a
tuple, list or dict of them) against the reference's, part by part (`_parts.py`), with named
mistakes, per-part credit and the arguments the call changed in place."""

from __future__ import annotations

import logging
from typing import Any

from graders._context import GradingContext
from graders._result import JSONValue
from graders.notebook._compare import (
    CheckOutcome,
    Failure,
    Tree,
    as_tree,
    describe,
    no_points,
    returned_value,
    torch_arguments,
)
from graders.notebook._mutation import forfeits, mutated_arguments, mutation_phrase
from graders.notebook._parts import PartsComparison, ToleranceFor, compare_parts, merge_trials
from graders.notebook._session import CheckResult
from graders.notebook.config import FunctionCheck

logger = logging.getLogger(__name__)

# A comparison's wrong part, as the status stored in the check's details.
STATUS_OF_PART = {"shape": "shape", "missing": "shape", "nonfinite": "values", "values": "values"}


def function_outcome(
    check: FunctionCheck,
    expected: dict[str, tuple[dict[str, Any], Tree]],
    results: dict[str, CheckResult],
    context: GradingContext,
    stopped: str,
) -> CheckOutcome:
    factor = check.cuda_tolerance_factor if context.device.startswith("cuda") else 1.0
    details: dict[str, JSONValue] = {
        "max_points": check.points,
        "rtol": check.rtol * factor,
        "atol": check.atol * factor,
    }

    def tolerance_for(part: str) -> tuple[float, float]:
        own = check.tolerances.get(part)
        rtol, atol = (own.rtol, own.atol) if own is not None else (check.rtol, check.atol)
        return rtol * factor, atol * factor

    comparisons: list[PartsComparison] = []
    mutated: list[str] = []
    hint = ""
    for trial in range(check.trials):
        check_id = f"{check.name}#{trial}"
        inputs, want = expected[check_id]
        result = results.get(check_id)
        returned = returned_value(result, stopped, "result")
        if isinstance(returned, Failure):
            return no_points(check.name, check.points, details, returned.message, returned.status)
        mutated += [name for name in mutated_arguments(result, inputs) if name not in mutated]
        comparison = compare_parts(returned, want, check.outputs, tolerance_for)
        if not comparison.all_right and not hint:
            hint = _named_mistake(check, context, inputs, returned, comparison, tolerance_for)
        comparisons.append(comparison)
    merged = merge_trials(comparisons)
    return _scored(check, merged, mutated, hint, details)


def _scored(
    check: FunctionCheck,
    comparison: PartsComparison,
    mutated: list[str],
    hint: str,
    details: dict[str, JSONValue],
) -> CheckOutcome:
    """The check's points and line from its merged comparison and the arguments it changed."""
    if comparison.groups != ("",):  # a structure: each part's own result
        details["parts"] = {
            part.name: {"status": part.status, "max_abs_error": part.max_abs_error}
            for part in comparison.parts
        }
    else:
        if comparison.parts and comparison.parts[0].max_abs_error is not None:
            details["max_abs_error"] = comparison.parts[0].max_abs_error
    if comparison.all_right:
        fraction, status = 1.0, "correct"
    elif check.part_credit and comparison.right_groups:
        fraction = len(comparison.right_groups) / len(comparison.groups)
        status = "partial"
    else:
        wrong = comparison.wrong_parts
        fraction, status = 0.0, ("shape" if comparison.structure else STATUS_OF_PART[wrong[0].status])
    if mutated:
        details["mutated"] = list(mutated)
    if forfeits(mutated, check.allow_mutation):
        fraction, status = 0.0, "mutated"
    points = round(fraction * check.points, 6)
    sentences = [mutation_phrase(check.name, mutated)] if mutated else []
    if comparison.all_right:
        sentences.append("Its outputs were right." if mutated else "correct.")
    else:
        what = comparison.phrase()
        sentences.append(f"{what} {hint}" if hint else what)
        if check.part_credit and comparison.right_groups and not forfeits(mutated, check.allow_mutation):
            share = check.points / len(comparison.groups)
            sentences.append(f"Each right part earns {share:g}.")
    message = " ".join(sentences)
    details.update(points=points, status=status)
    if status != "correct":
        details["message"] = message
    line = f"{check.name}: {points:g}/{check.points:g} - {message}"
    return CheckOutcome(check.name, points, check.points, line, details)


def _named_mistake(
    check: FunctionCheck,
    context: GradingContext,
    inputs: dict[str, Any],
    given: Tree,
    comparison: PartsComparison,
    tolerance_for: ToleranceFor,
) -> str:
    """The feedback of the first named mistake the student's value matches, or "". A mistake
    matches when every part the student got wrong equals the mistake's value of that part (so a
    mistake written for one part of a tuple still names it when the other parts are right), or,
    when the student's structure is not the one due, when the whole value equals the mistake's."""
    wrong = {part.name for part in comparison.wrong_parts}
    for mistake in check.mistakes:
        try:
            value = context.reference_function(mistake.reference)(*torch_arguments(inputs))
            against = compare_parts(given, as_tree(value), check.outputs, tolerance_for)
        except Exception:
            logger.exception("named mistake %s failed", mistake.reference)
            continue
        if against.structure:
            continue
        if comparison.structure:
            matched = against.all_right
        else:
            right = {part.name for part in against.parts if part.status == "right"}
            matched = bool(wrong) and wrong <= right
        if matched:
            return mistake.feedback
    return ""


def refuse_unnamed_parts(check: FunctionCheck, want: Tree) -> None:
    """At load time (the grader's self_check): `outputs` and `tolerances` must name the parts the
    reference really returns; raises ValueError saying which do not."""
    if check.outputs is not None:
        if not isinstance(want, tuple | list) or len(want) != len(check.outputs):
            raise ValueError(
                f"{check.name}: `outputs` names {len(check.outputs)} parts but the reference "
                f"{check.reference!r} returns {describe(want)}"
            )
        return
    keys = set(want) if isinstance(want, dict) else set()
    if unknown := sorted(set(check.tolerances) - keys):
        raise ValueError(
            f"{check.name}: `tolerances` names parts the reference {check.reference!r} does not return: "
            f"{', '.join(unknown)} (name a tuple's parts with `outputs`)"
        )
