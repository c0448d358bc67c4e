"""Notebooks for tests: the reference solution, variants with one wrong function, and helpers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graders import GradingContext, get_grader
from graders.notebook import NotebookConfig
from service.assignments.material import read_material
from service.assignments.references import load_reference_functions

HW5 = Path(__file__).resolve().parents[2] / "reference" / "hw5"
SOLUTION = HW5 / "solution.ipynb"


def solution_cells() -> list[str]:
    notebook = json.loads(SOLUTION.read_text(encoding="utf-8"))
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def notebook_text(cells: list[str]) -> str:
    """A valid nbformat-4 notebook holding these code cells."""
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                 "source": source}
                for i, source in enumerate(cells)
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )  # fmt: skip


def with_function(cells: list[str], name: str, source: str) -> list[str]:
    """The cells with the cell defining `name` replaced by `source`."""
    replaced = [source if cell.lstrip().startswith(f"def {name}(") else cell for cell in cells]
    assert replaced != cells, f"no cell defines {name}"
    return replaced


def answer_for(content: str) -> dict[str, Any]:
    data = content.encode()
    return {
        "name": "hw5.ipynb",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content": content,
    }


@dataclass(frozen=True)
class Q4:
    config: NotebookConfig
    context: GradingContext

    def grade(self, content: str, config: NotebookConfig | None = None) -> Any:
        grader = get_grader("notebook")
        return grader.grade_raw_answer(config or self.config, answer_for(content), self.context)


def load_q4() -> Q4:
    material = read_material(HW5)
    reference = load_reference_functions(material.reference_source, material.content_hash)
    question = next(q for q in material.material.questions if q.id == "q4")
    config = get_grader("notebook").parse_config(question.config)
    assert isinstance(config, NotebookConfig)
    return Q4(config, GradingContext(variant_seed=12345, reference=reference))
