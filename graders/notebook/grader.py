"""Notebooks in two stages: run them in the sandbox (stage 1), compare outside it (stage 2)."""

from __future__ import annotations

import io
import json
import logging
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from graders._context import GradingContext
from graders._grader import Grader, GraderKind
from graders._json_depth import json_nesting_depth
from graders._result import GradeResult, JSONValue, Verdict
from graders.notebook._compare import (
    CheckOutcome,
    FloatArray,
    as_numpy,
    classifier_outcome,
    function_outcome,
    torch_arguments,
)
from graders.notebook._session import RunReport, clean_text, converse
from graders.notebook.config import NotebookAnswer, NotebookConfig
from graders.sandbox import (
    SandboxChannel,
    SandboxLimits,
    SandboxMode,
    SandboxRun,
    SandboxUnavailable,
    SpareSandboxes,
    run_sandboxed,
)

logger = logging.getLogger(__name__)

RUNNER_SCRIPT = Path(__file__).with_name("_runner.py")
# The tail of the run's output kept in the details (the sandbox keeps a longer one).
OUTPUT_TAIL_CHARS = 2000
# Time to start the interpreter and import torch inside the sandbox, on top of the notebook's own.
STARTUP_SECONDS = 20.0
# A real notebook is 4 to 8 levels deep (cells, outputs, data, widget state); 64 leaves room.
MAX_NOTEBOOK_DEPTH = 64


class NotebookRejected(ValueError):
    """The upload is not a notebook that can be run (its message is for the student)."""


def read_notebook(content: str, max_bytes: int) -> dict[str, Any]:
    """Parse and validate a notebook (nbformat 4); raises NotebookRejected saying what is wrong."""
    import nbformat

    if len(content.encode()) > max_bytes:
        raise NotebookRejected(f"The notebook is larger than {max_bytes} bytes.")
    with warnings.catch_warnings():
        # nbformat warns about fixable details (missing cell ids ...); only errors matter here.
        warnings.simplefilter("ignore")
        try:
            notebook = nbformat.reads(content, as_version=4)  # type: ignore[no-untyped-call]
        except Exception as error:
            raise NotebookRejected(f"The file is not a Jupyter notebook: {_first_line(error)}") from None
        try:
            nbformat.validate(notebook)
        except Exception as error:
            message = _first_line(error)
            raise NotebookRejected(f"The notebook does not follow the nbformat 4 schema: {message}") from None
    return dict(notebook)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


@dataclass
class _Plan:
    files: dict[str, bytes]
    entries: list[dict[str, Any]]
    # Per function check and trial: the inputs (kept to evaluate named mistakes) and the expected output.
    expected: dict[str, tuple[dict[str, Any], FloatArray]]
    labels: dict[str, npt.NDArray[np.int64]]


class NotebookGrader(Grader[NotebookConfig, NotebookAnswer]):
    kind: ClassVar[GraderKind] = GraderKind.NOTEBOOK
    version: ClassVar[str] = "1"
    config_model = NotebookConfig
    answer_model = NotebookAnswer
    accepts_upload: ClassVar[bool] = True

    def __init__(self) -> None:
        # Warm start: the next run's sandbox (interpreter and torch imported) waits ahead of time.
        # Each is used by one run only; see graders/sandbox/_run.py.
        self.spares: SpareSandboxes | None = SpareSandboxes()

    def check_upload(self, content: bytes) -> str | None:
        """Why the bytes cannot be a Jupyter notebook at all, or None.

        Only the cheap checks; nbformat's schema validation happens when it is graded, where a
        notebook that fails it gets an `invalid` verdict with nbformat's message."""
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return "not a Jupyter notebook: the file is not UTF-8 text"
        # Bounded before parsing: the decoder (here, and nbformat's validator when it is graded)
        # recurses once per level, and a file of 5,000 nested brackets would exhaust the stack.
        if (depth := json_nesting_depth(content)) > MAX_NOTEBOOK_DEPTH:
            return f"not a Jupyter notebook: its JSON is nested {depth} levels (at most {MAX_NOTEBOOK_DEPTH})"
        try:
            document = json.loads(text)
        except ValueError as error:
            return f"not a Jupyter notebook: the file is not JSON ({error})"
        if not isinstance(document, dict) or "cells" not in document or "nbformat" not in document:
            return "not a Jupyter notebook: a JSON object with `cells` and `nbformat` was expected"
        return None

    def reference_names(self, config: NotebookConfig) -> list[str]:
        names = [data.generator for data in config.data]
        for check in config.functions:
            names += [check.reference, check.inputs] + [mistake.reference for mistake in check.mistakes]
        names += [check.dataset for check in config.classifiers]
        return names

    def self_check(self, config: NotebookConfig, context: GradingContext) -> None:
        plan = self._plan(config, context, "cpu")
        for check in config.classifiers:
            labels = plan.labels[check.name]
            if labels.shape != (check.size,) or labels.min() < 0 or labels.max() >= check.classes:
                raise ValueError(
                    f"dataset {check.dataset!r} must give {check.size} labels in 0..{check.classes - 1}"
                )

    def public_config(self, config: NotebookConfig) -> dict[str, JSONValue]:
        checks: list[JSONValue] = [
            {"name": check.name, "points": check.points, "seconds": check.seconds}
            for check in config.functions
        ]
        checks += [
            {"name": check.name, "points": check.points, "zero_at": check.zero_at, "full_at": check.full_at}
            for check in config.classifiers
        ]
        return {
            "checks": checks,
            "data_files": [data.file for data in config.data],
            "notebook_seconds": config.notebook_seconds,
            "memory_mb": config.memory_mb,
            "max_notebook_bytes": config.max_notebook_bytes,
        }

    def grade(self, config: NotebookConfig, answer: NotebookAnswer, context: GradingContext) -> GradeResult:
        if answer.content is None:
            raise ValueError("the notebook's content was not loaded before grading")
        try:
            read_notebook(answer.content, config.max_notebook_bytes)
        except NotebookRejected as error:
            return GradeResult.invalid(str(error))
        device = context.device
        plan = self._plan(config, context, device)
        plan.files["notebook.ipynb"] = answer.content.encode()
        total_check_seconds = sum(entry["seconds"] for entry in plan.entries)
        limits = SandboxLimits(
            wall_seconds=STARTUP_SECONDS + config.notebook_seconds + total_check_seconds,
            cpu_seconds=int(2 * (STARTUP_SECONDS + config.notebook_seconds + total_check_seconds)) + 1,
            memory_bytes=config.memory_mb * 1024**2,
            max_processes=config.max_processes,
            work_dir_bytes=config.work_dir_mb * 1024**2,
            max_result_bytes=16 * 1024**2 + sum(8 * entry["max_elements"] + 4096 for entry in plan.entries),
            gpu=device.startswith("cuda"),
        )
        report = RunReport()

        def conversation(channel: SandboxChannel) -> None:
            converse(report, channel, plan.entries, config.notebook_seconds)

        mode = SandboxMode(context.sandbox_mode)
        try:
            run = run_sandboxed(RUNNER_SCRIPT, plan.files, [], limits, conversation, mode, self.spares)
        except SandboxUnavailable as error:
            # The server cannot run notebooks safely: staff must act; the student is not blamed.
            return GradeResult(Verdict.ERROR, 0.0, f"Notebooks cannot be graded on this server: {error}.")
        return self._score(config, plan, run, report, context)

    # -- stage 0: inputs, expected outputs and hidden labels, all generated outside the sandbox ----

    def _plan(self, config: NotebookConfig, context: GradingContext, device: str) -> _Plan:
        files: dict[str, bytes] = {}
        for data in config.data:
            files[data.file] = _npz_bytes(context.reference_function(data.generator)())
        entries: list[dict[str, Any]] = []
        expected: dict[str, tuple[dict[str, Any], FloatArray]] = {}
        labels: dict[str, npt.NDArray[np.int64]] = {}
        for check in config.functions:
            for trial in range(check.trials):
                check_id = f"{check.name}#{trial}"
                rng = np.random.default_rng(
                    [config.seed, context.variant_seed, zlib.crc32(check.name.encode()), trial]
                )
                inputs = dict(context.reference_function(check.inputs)(rng))
                arrays = {name: np.asarray(value) for name, value in inputs.items()}
                want = as_numpy(context.reference_function(check.reference)(*torch_arguments(arrays)))
                expected[check_id] = (arrays, want)
                files[f"{check_id.replace('#', '-')}.npz"] = _npz_bytes(arrays)
                entries.append(
                    {
                        "id": check_id,
                        "name": check.name,
                        "kind": "function",
                        "args": list(arrays),
                        "inputs": f"{check_id.replace('#', '-')}.npz",
                        "seconds": check.seconds,
                        "max_elements": 4 * want.size + 16,
                        "max_bytes": 8 * (4 * want.size + 16) + 65536,
                    }
                )
        for classifier in config.classifiers:
            features, targets = context.reference_function(classifier.dataset)(
                classifier.seed, classifier.size
            )
            labels[classifier.name] = np.asarray(targets, dtype=np.int64)
            # Only the features enter the sandbox; the labels stay here.
            files[f"{classifier.name}-features.npz"] = _npz_bytes(
                {"X": np.asarray(features, dtype=np.float32)}
            )
            # Room for a wrong shape (a model returning its input), so the feedback can name it.
            size = classifier.size * max(classifier.classes, 64)
            entries.append(
                {
                    "id": classifier.name,
                    "name": classifier.name,
                    "kind": "classifier",
                    "inputs": f"{classifier.name}-features.npz",
                    "seconds": classifier.seconds,
                    "batch": classifier.batch,
                    "max_elements": size,
                    "max_bytes": 8 * size + 65536,
                }
            )
        plan = {
            "notebook_seconds": config.notebook_seconds,
            "device": device,
            "seed": config.seed,
            "data_files": [d.file for d in config.data],
            "checks": entries,
        }
        files["plan.json"] = json.dumps(plan).encode()
        return _Plan(files, entries, expected, labels)

    # -- stage 2: compare outside the sandbox --------------------------------------------------------

    def _score(
        self, config: NotebookConfig, plan: _Plan, run: SandboxRun, report: RunReport, context: GradingContext
    ) -> GradeResult:
        sandbox = _sandbox_details(run, report, context.device)
        if report.ready is None:
            if run.limit is not None:
                return GradeResult.invalid(
                    f"The notebook could not be run: it exceeded the {run.limit} limit.", {"sandbox": sandbox}
                )
            output = clean_text(run.output_tail[-1000:], 1000)
            raise RuntimeError(f"the sandbox did not start (exit {run.exit_code}): {output}")
        cell_lines, cell_details = _cells_summary(report)
        if report.cells_timed_out:
            stopped = f"the time limit of {config.notebook_seconds:g} s for the cells"
        elif run.limit:
            stopped = f"the {run.limit} limit"
        else:
            stopped = f"an exit ({run.exit_code})"
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
        for classifier in config.classifiers:
            outcomes.append(
                classifier_outcome(classifier, plan.labels[classifier.name], report.checks, stopped)
            )
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
        return GradeResult.from_fraction(earned / possible, "\n".join(lines), details)


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


__all__ = ["NotebookGrader", "NotebookRejected", "read_notebook"]
