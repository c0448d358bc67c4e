"""Notebooks in two stages: run them in the sandbox (stage 1), compare outside it (stage 2)."""

from __future__ import annotations

import io
import json
import logging
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from graders._context import GradingContext
from graders._grader import Grader, GraderKind
from graders._result import GradeResult, JSONValue, Verdict
from graders.notebook.config import ClassifierCheck, FunctionCheck, NotebookAnswer, NotebookConfig
from graders.sandbox import (
    SandboxLimits,
    SandboxMode,
    SandboxRun,
    SandboxUnavailable,
    SpareSandboxes,
    run_sandboxed,
)

logger = logging.getLogger(__name__)

RUNNER_SCRIPT = Path(__file__).with_name("_runner.py")
# Time to start the interpreter and import torch inside the sandbox, on top of the notebook's own.
STARTUP_SECONDS = 20.0
MAX_HEADER_BYTES = 64 * 1024
FloatArray = npt.NDArray[np.float64]


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


@dataclass
class _Record:
    header: dict[str, Any]
    payload: bytes


def parse_records(stream: bytes) -> list[_Record]:
    """The runner's records; a truncated tail (the run was killed mid-write) is dropped."""
    records: list[_Record] = []
    offset = 0
    while offset + 4 <= len(stream):
        (length,) = struct.unpack(">I", stream[offset : offset + 4])
        if length > MAX_HEADER_BYTES or offset + 4 + length > len(stream):
            break
        try:
            header = json.loads(stream[offset + 4 : offset + 4 + length])
        except ValueError:
            break
        if not isinstance(header, dict):
            break
        size = header.get("payload_bytes", 0)
        if not isinstance(size, int) or size < 0 or offset + 4 + length + size > len(stream):
            break
        start = offset + 4 + length
        records.append(_Record(header, stream[start : start + size]))
        offset = start + size
    return records


def load_array(payload: bytes) -> FloatArray:
    """One .npy array from the sandbox: never unpickled, always a float64 array."""
    array = np.load(io.BytesIO(payload), allow_pickle=False)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ValueError("the result is not a numeric array")
    return np.asarray(array, dtype=np.float64)


def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def _as_numpy(value: Any) -> FloatArray:
    detach = getattr(value, "detach", None)
    if detach is not None:
        value = detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


@dataclass
class _CheckOutcome:
    name: str
    points: float
    max_points: float
    line: str
    details: dict[str, JSONValue] = field(default_factory=dict)


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

    def __init__(self) -> None:
        # Warm start: the next run's sandbox (interpreter and torch imported) waits ahead of time.
        # Each is used by one run only; see graders/sandbox/_run.py.
        self.spares: SpareSandboxes | None = SpareSandboxes()

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
        try:
            run = run_sandboxed(
                RUNNER_SCRIPT, plan.files, [], limits, SandboxMode(context.sandbox_mode), self.spares
            )
        except SandboxUnavailable as error:
            # The server cannot run notebooks safely: staff must act; the student is not blamed.
            return GradeResult(Verdict.ERROR, 0.0, f"Notebooks cannot be graded on this server: {error}.")
        return self._score(config, plan, run, context)

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
                want = _as_numpy(context.reference_function(check.reference)(*_torch_arguments(arrays)))
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
        self, config: NotebookConfig, plan: _Plan, run: SandboxRun, context: GradingContext
    ) -> GradeResult:
        device = context.device
        records = parse_records(run.result)
        events = [record.header.get("event") for record in records]
        sandbox: dict[str, JSONValue] = {
            "seconds": round(run.seconds, 3),
            "limit": run.limit,
            "exit_code": run.exit_code,
            "output_bytes": run.output_bytes,
            "output_tail": run.output_tail[-2000:],
            "device": device,
            "warm": run.warm,
            "uid": run.uid,
        }
        if "ready" not in events:
            if run.limit is not None:
                return GradeResult.invalid(
                    f"The notebook could not be run: it exceeded the {run.limit} limit.", {"sandbox": sandbox}
                )
            raise RuntimeError(f"the sandbox did not start (exit {run.exit_code}): {run.output_tail[-1000:]}")
        ready = next((r.header for r in records if r.header.get("event") == "ready"), {})
        # Interpreter and torch import; `waited` > 0 means the sandbox was ready before it was needed.
        sandbox["startup_seconds"] = ready.get("seconds")
        sandbox["waited_seconds"] = ready.get("waited")
        cell_lines, cells_finished, cell_details = _cells_summary(records)
        if "cells_timeout" in events:
            stopped = f"the time limit of {config.notebook_seconds:g} s for the cells"
        elif run.limit:
            stopped = f"the {run.limit} limit"
        else:
            stopped = f"an exit ({run.exit_code})"
        if not cells_finished:
            running = next(
                (r.header["index"] for r in reversed(records) if r.header.get("event") == "cell_started"),
                None,
            )
            where = f" while cell {running} was running" if running else ""
            return GradeResult.invalid(
                f"The notebook was stopped by {stopped}{where}; no check could run. "
                f"Limits: {config.notebook_seconds:g} s for the cells, {config.memory_mb} MB of memory, "
                f"{config.max_processes} processes, no network.",
                {"sandbox": sandbox, "cells": cell_details},
            )
        results = {r.header.get("name"): r for r in records if r.header.get("event") == "check"}
        outcomes: list[_CheckOutcome] = []
        for check in config.functions:
            outcomes.append(self._function_outcome(check, plan, results, context, stopped))
        for classifier in config.classifiers:
            outcomes.append(self._classifier_outcome(classifier, plan, results, stopped))
        earned = sum(outcome.points for outcome in outcomes)
        possible = sum(outcome.max_points for outcome in outcomes)
        lines = cell_lines + [outcome.line for outcome in outcomes]
        if run.limit and "done" not in events:
            lines.append(f"The run was stopped by {stopped}.")
        details: dict[str, JSONValue] = {
            "checks": {outcome.name: outcome.details for outcome in outcomes},
            "points": round(earned, 6),
            "max_points": possible,
            "cells": cell_details,
            "sandbox": sandbox,
        }
        return GradeResult.from_fraction(earned / possible, "\n".join(lines), details)

    def _function_outcome(
        self,
        check: FunctionCheck,
        plan: _Plan,
        results: dict[Any, _Record],
        context: GradingContext,
        stopped: str,
    ) -> _CheckOutcome:
        device = context.device
        factor = check.cuda_tolerance_factor if device.startswith("cuda") else 1.0
        rtol, atol = check.rtol * factor, check.atol * factor
        details: dict[str, JSONValue] = {"max_points": check.points, "rtol": rtol, "atol": atol}

        def failed(message: str, status: str) -> _CheckOutcome:
            details.update(points=0.0, status=status, message=message)
            return _CheckOutcome(
                check.name, 0.0, check.points, f"{check.name}: 0/{check.points:g} - {message}", details
            )

        for trial in range(check.trials):
            check_id = f"{check.name}#{trial}"
            record = results.get(check_id)
            if record is None:
                return failed(f"not run: the run was stopped by {stopped}.", "not_run")
            status = record.header.get("status")
            if status != "ok":
                error = str(record.header.get("error", "failed"))[:600]
                if status == "timeout":
                    return failed(f"{error}.", "timeout")
                return failed(f"raised {error}" if not error.startswith("returned") else error, "error")
            try:
                given = load_array(record.payload)
            except ValueError as error:
                return failed(f"the result could not be read as a tensor ({error}).", "error")
            inputs, want = plan.expected[check_id]
            if want.shape == () and given.size == 1:
                given = given.reshape(())  # a scalar may come back as a 1-element tensor
            if given.shape != want.shape:
                return failed(
                    f"wrong shape: expected {tuple(want.shape)}, got {tuple(given.shape)}.", "shape"
                )
            if not np.all(np.isfinite(given)):
                return failed("the result holds NaN or infinite values.", "values")
            if not np.allclose(given, want, rtol=rtol, atol=atol):
                error_size = float(np.max(np.abs(given - want)))
                details["max_abs_error"] = error_size
                hint = _named_mistake(check, context, inputs, given, rtol, atol)
                message = f"wrong values: the largest difference is {error_size:.3g} "
                message += f"(atol {atol:g}, rtol {rtol:g})."
                return failed(f"{message} {hint}" if hint else message, "values")
        details.update(points=check.points, status="correct")
        return _CheckOutcome(
            check.name,
            check.points,
            check.points,
            f"{check.name}: {check.points:g}/{check.points:g} - correct.",
            details,
        )

    def _classifier_outcome(
        self, check: ClassifierCheck, plan: _Plan, results: dict[Any, _Record], stopped: str
    ) -> _CheckOutcome:
        details: dict[str, JSONValue] = {
            "max_points": check.points,
            "zero_at": check.zero_at,
            "full_at": check.full_at,
        }
        record = results.get(check.name)

        def failed(message: str, status: str) -> _CheckOutcome:
            details.update(points=0.0, status=status, message=message)
            return _CheckOutcome(
                check.name, 0.0, check.points, f"{check.name}: 0/{check.points:g} - {message}", details
            )

        if record is None:
            return failed(f"not run: the run was stopped by {stopped}.", "not_run")
        if record.header.get("status") != "ok":
            error = str(record.header.get("error", "failed"))[:600]
            return failed(
                f"{error}." if record.header.get("status") == "timeout" else f"raised {error}", "error"
            )
        try:
            logits = load_array(record.payload)
        except ValueError as error:
            return failed(f"the output could not be read as a tensor ({error}).", "error")
        labels = plan.labels[check.name]
        if logits.shape != (len(labels), check.classes):
            return failed(
                f"the model returned shape {tuple(logits.shape)}, not (batch, {check.classes}).", "shape"
            )
        if not np.all(np.isfinite(logits)):
            return failed("the model's outputs hold NaN or infinite values.", "values")
        accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
        fraction = min(max((accuracy - check.zero_at) / (check.full_at - check.zero_at), 0.0), 1.0)
        points = round(fraction * check.points, 6)
        details.update(points=points, status="scored", accuracy=accuracy)
        line = (
            f"{check.name}: {points:g}/{check.points:g} - accuracy {accuracy:.1%} on {len(labels)} "
            f"hidden test sequences (0 points at {check.zero_at:.0%} or less, "
            f"all at {check.full_at:.0%} or more)."
        )
        return _CheckOutcome(check.name, points, check.points, line, details)


def _cells_summary(records: list[_Record]) -> tuple[list[str], bool, dict[str, JSONValue]]:
    count = next((r.header.get("count", 0) for r in records if r.header.get("event") == "cells"), None)
    finished = [r.header for r in records if r.header.get("event") == "cell"]
    details: dict[str, JSONValue] = {"count": count, "ran": len(finished)}
    if count is None:
        return [], False, details
    failed = next((header for header in finished if header.get("status") == "error"), None)
    if failed is not None:
        details["error"] = {"cell": failed.get("index"), "error": failed.get("error")}
        line = (
            f"Cell {failed.get('index')} raised {failed.get('error')}; the cells after it did not run, "
            "and the checks used what the cells before it defined."
        )
        return [line], True, details
    return [], len(finished) == count, details


def _named_mistake(
    check: FunctionCheck,
    context: GradingContext,
    inputs: dict[str, Any],
    given: FloatArray,
    rtol: float,
    atol: float,
) -> str:
    """The feedback of the first named mistake whose output the student's matches, or ""."""
    for mistake in check.mistakes:
        try:
            wrong = _as_numpy(context.reference_function(mistake.reference)(*_torch_arguments(inputs)))
        except Exception:
            logger.exception("named mistake %s failed", mistake.reference)
            continue
        if wrong.shape == given.shape and np.allclose(given, wrong, rtol=rtol, atol=atol):
            return mistake.feedback
    return ""


def _torch_arguments(arrays: dict[str, Any]) -> list[Any]:
    import torch

    return [torch.as_tensor(np.asarray(value)) for value in arrays.values()]


__all__ = ["NotebookGrader", "NotebookRejected", "parse_records", "read_notebook"]
