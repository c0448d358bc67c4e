"""Notebooks in two stages: run them in the sandbox (stage 1), compare outside it (stage 2).

The stages live in their own modules: `_validation` (is the upload a notebook), `_plan` (stage 0:
inputs, expected outputs, hidden labels, the run's limits), `_runner` (with each kind of check's
call in `_calls`) and `_session` (stage 1, the two sides of the run, speaking the format of
`_wire`), `_compare`, `_parts`, `_mutation`, one module per kind of check (`_functions`,
`_modules`, `_gradients`, `_trained`) and `_score` (stage 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from graders._context import GradingContext
from graders._grader import Grader, GraderKind
from graders._json_depth import json_nesting_depth
from graders._result import GradeResult, JSONValue, Verdict
from graders.notebook._functions import refuse_unnamed_parts
from graders.notebook._plan import NOTEBOOK_FILE, build_plan, sandbox_limits
from graders.notebook._score import score
from graders.notebook._session import RunReport, converse
from graders.notebook._validation import NotebookRejected, read_notebook
from graders.notebook._visibility import with_visibility
from graders.notebook.config import NotebookAnswer, NotebookConfig, RegressionCheck, SequenceCheck
from graders.sandbox import SandboxChannel, SandboxMode, SandboxUnavailable, Zygotes, run_sandboxed

RUNNER_SCRIPT = Path(__file__).with_name("_runner.py")
# A real notebook is 4 to 8 levels deep (cells, outputs, data, widget state); 64 leaves room.
MAX_NOTEBOOK_DEPTH = 64


class NotebookGrader(Grader[NotebookConfig, NotebookAnswer]):
    kind: ClassVar[GraderKind] = GraderKind.NOTEBOOK
    # Bumped when the same answer may get another verdict: 2, module and gradient checks follow the
    # function checks' part comparison and mutation rule.
    version: ClassVar[str] = "2"
    config_model = NotebookConfig
    answer_model = NotebookAnswer
    accepts_upload: ClassVar[bool] = True

    def __init__(self) -> None:
        # Each run is forked from a sandboxed server that imported these once per grading process,
        # and isolated from every other run before the runner starts (graders/sandbox/_zygote.py).
        # torch._dynamo: the runner's `torch.use_deterministic_algorithms` imports it (and sympy),
        # 1.3 s of a run's start-up when it was not preloaded.
        self.zygotes: Zygotes | None = Zygotes(preload=("numpy", "torch", "torch._dynamo"))

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
        for module in config.modules:
            names += [module.reference, module.inputs]
        names += [name for check in config.gradients for name in (check.forward, check.inputs)]
        names += [check.dataset for check in config.classifiers]
        names += [check.dataset for check in [*config.regressions, *config.sequences]]
        return names

    def self_check(self, config: NotebookConfig, context: GradingContext) -> None:
        # Building the plan runs every reference: each module check's reference class is built
        # with its `init` and run forward (and backward) on its inputs; each gradient check's
        # reference forward and autograd run (a `wrt` name that is no argument, or an output that
        # does not depend on one, fails here).
        # Building the plan also checks the regression and sequence datasets: their shapes, their
        # targets (finite; tokens in the vocabulary) and the logits a sequence model would return
        # (at most config.MAX_SEQUENCE_OUTPUT_VALUES); see _plan.py.
        plan = build_plan(config, context, "cpu")
        for function in config.functions:
            refuse_unnamed_parts(function, plan.expected[f"{function.name}#0"][1])
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
            {"name": check.name, "points": check.points, "seconds": check.seconds, "backward": check.backward}
            for check in config.modules
        ]
        checks += [
            {"name": check.name, "points": check.points, "seconds": check.seconds, "wrt": list(check.wrt)}
            for check in config.gradients
        ]
        checks += [
            {"name": check.name, "points": check.points, "zero_at": check.zero_at, "full_at": check.full_at}
            for check in config.classifiers
        ]
        trained: list[RegressionCheck | SequenceCheck] = [*config.regressions, *config.sequences]
        checks += [
            {
                "name": check.name,
                "points": check.points,
                "metric": check.metric,
                "zero_at": check.zero_at,
                "full_at": check.full_at,
            }
            for check in trained
        ]
        return {
            "checks": with_visibility(checks, config),
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
        plan = build_plan(config, context, device)
        plan.files[NOTEBOOK_FILE] = answer.content.encode()
        limits = sandbox_limits(config, plan, device)
        report = RunReport()

        def conversation(channel: SandboxChannel) -> None:
            converse(report, channel, plan.entries, config.notebook_seconds)

        mode = SandboxMode(context.sandbox_mode)
        try:
            run = run_sandboxed(RUNNER_SCRIPT, plan.files, [], limits, conversation, mode, self.zygotes)
        except SandboxUnavailable as error:
            # The server cannot run notebooks safely: staff must act; the student is not blamed.
            return GradeResult(Verdict.ERROR, 0.0, f"Notebooks cannot be graded on this server: {error}.")
        return score(config, plan, run, report, context)


__all__ = ["NotebookGrader", "NotebookRejected", "read_notebook"]
