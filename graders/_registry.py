"""The closed registry: a grader kind named in material maps to one class here, never to an import path."""

from __future__ import annotations

from typing import Any

from graders._grader import Grader, GraderKind
from graders.choice.grader import ChoiceGrader
from graders.expression.grader import ExpressionGrader
from graders.manual.grader import ManualGrader
from graders.notebook.grader import NotebookGrader
from graders.tensor.grader import TensorGrader

_GRADERS: dict[GraderKind, Grader[Any, Any]] = {
    GraderKind.CHOICE: ChoiceGrader(),
    GraderKind.TENSOR: TensorGrader(),
    GraderKind.MANUAL: ManualGrader(),
    GraderKind.EXPRESSION: ExpressionGrader(),
    GraderKind.NOTEBOOK: NotebookGrader(),
}


def get_grader(kind: GraderKind | str) -> Grader[Any, Any]:
    """The grader for a kind; raises KeyError naming the known kinds for an unknown one."""
    try:
        return _GRADERS[GraderKind(kind)]
    except ValueError:
        known = ", ".join(sorted(k.value for k in _GRADERS))
        raise KeyError(f"unknown grader kind {kind!r}; known kinds: {known}") from None


def known_kinds() -> list[GraderKind]:
    return list(_GRADERS)
