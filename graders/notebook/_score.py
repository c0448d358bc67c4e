"""Stage 2 of notebook grading, outside the sandbox: one result from a run and its checks' outcomes."""

from __future__ import annotations

from dataclasses import replace

from graders._context import GradingContext
from graders._result import GradeResult, JSONValue
from graders.notebook._compare import CheckOutcome
from graders.notebook._functions import function_outcome
from graders.notebook._gradients import gradient_outcome
from graders.notebook._modules import module_outcome
from graders.notebook._plan import Plan
from graders.notebook._session import RunReport, clean_text
from graders.notebook._trained import classifier_outcome, regression_outcome, sequence_outcome
from graders.notebook._visibility import public_view
from graders.notebook.config import NotebookConfig
from graders.sandbox import SandboxRun

# The tail of the run's output kept in the details (the sandbox keeps a longer one).
OUTPUT_TAIL_CHARS = 2000
# The tail of the output quoted in the error of a sandbox that did not start: its traceback's end.
STARTUP_FAILURE_OUTPUT_CHARS = 1000


def score(
    config: NotebookConfig, plan: Plan, run: SandboxRun, report: RunReport, context: GradingContext
) -> GradeResult:
    sandbox = _sandbox_details(run, report, context.device)
    if report.ready is None:
        if run.limit is not None:
            return GradeResult.invalid(
                f"The notebook could not be run: it exceeded the {run.limit} limit.", {"sandbox": sandbox}
            )
        output = clean_text(run.output_tail[-STARTUP_FAILURE_OUTPUT_CHARS:], STARTUP_FAILURE_OUTPUT_CHARS)
        raise RuntimeError(f"the sandbox did not start (exit {run.exit_code}): {output}")
    cell_lines, cell_details = _cells_summary(report)
    stopped = _stopped_by(config, run, report)
    if not report.cells_finished:
        running = report.running_cell
        where = f" while cell {running} was running" if running else ""
        return GradeResult.invalid(
            f"The notebook was stopped by {stopped}{where}; no check could run. "
            f"Limits: {config.notebook_seconds:g} s for the cells, {config.memory_mb} MB of memory, "
            f"{config.max_processes} processes, no network.",
            {"sandbox": sandbox, "cells": cell_details},
        )
    outcomes: list[CheckOutcome] = []
    for check in config.functions:
        outcomes.append(function_outcome(check, plan.expected, report.checks, context, stopped))
    for module in config.modules:
        outcomes.append(module_outcome(module, plan.modules, report.checks, context, stopped))
    for gradient in config.gradients:
        outcomes.append(gradient_outcome(gradient, plan.gradients[gradient.name], report.checks, stopped))
    for classifier in config.classifiers:
        outcomes.append(classifier_outcome(classifier, plan.labels[classifier.name], report.checks, stopped))
    for regression in config.regressions:
        outcomes.append(regression_outcome(regression, plan.targets[regression.name], report.checks, stopped))
    for sequence in config.sequences:
        outcomes.append(sequence_outcome(sequence, plan.labels[sequence.name], report.checks, stopped))
    visibility = {check.name: check.visibility for check in config.checks}
    for outcome in outcomes:
        outcome.visibility = visibility[outcome.name]
    earned = sum(outcome.points for outcome in outcomes)
    possible = sum(outcome.max_points for outcome in outcomes)
    lines = cell_lines + [outcome.line for outcome in outcomes]
    if len(report.checks) < len(plan.entries):
        lines.append(f"The run was stopped by {stopped}.")
    details: dict[str, JSONValue] = {
        "checks": {outcome.name: outcome.details for outcome in outcomes},
        "points": round(earned, 6),
        "max_points": possible,
        "cells": cell_details,
        "sandbox": sandbox,
    }
    result = GradeResult.from_fraction(earned / possible, "\n".join(lines), details)
    return replace(result, public_view=public_view(outcomes, cell_lines))


def _stopped_by(config: NotebookConfig, run: SandboxRun, report: RunReport) -> str:
    """What ended the run, for feedback on whatever did not get to run."""
    if report.cells_timed_out:
        return f"the time limit of {config.notebook_seconds:g} s for the cells"
    if run.limit:
        return f"the {run.limit} limit"
    return f"an exit ({run.exit_code})"


def _sandbox_details(run: SandboxRun, report: RunReport, device: str) -> dict[str, JSONValue]:
    ready = report.ready or {}
    return {
        "seconds": round(run.seconds, 3),
        "limit": run.limit,
        "exit_code": run.exit_code,
        "output_bytes": run.output_bytes,
        "output_tail": clean_text(run.output_tail[-OUTPUT_TAIL_CHARS:], OUTPUT_TAIL_CHARS),
        "device": device,
        "warm": run.warm,
        "uid": run.uid,
        "cgroup": run.cgroup,
        # The fork server the run was forked from (None for a fresh sandbox).
        "server": run.server,
        # Interpreter and torch import; `waited` > 0 means the sandbox was ready before it was needed.
        "startup_seconds": ready.get("seconds"),
        "waited_seconds": ready.get("waited"),
        "cells_seconds": report.cells_seconds,
        "unreadable_lines": report.unreadable_lines,
    }


def _cells_summary(report: RunReport) -> tuple[list[str], dict[str, JSONValue]]:
    details: dict[str, JSONValue] = {"count": report.cell_count, "ran": report.cells_ran}
    if report.cell_error is None:
        return [], details
    index, error = report.cell_error
    details["error"] = {"cell": index, "error": error}
    line = (
        f"Cell {index} raised {error}; the cells after it did not run, "
        "and the checks used what the cells before it defined."
    )
    return [line], details
