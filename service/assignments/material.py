"""Reading an assignment folder (assignment.toml + reference module) and validating every question."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graders import GradingContext, get_grader
from service.assignments.policy import Policy
from service.assignments.references import ReferenceModuleError, load_reference_functions
from service.errors import MaterialError
from service.models import Queue

MATERIAL_FILE = "assignment.toml"


class QuestionMaterial(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_]{1,64}$")
    kind: str
    points: float = Field(gt=0)
    prompt: str = ""
    resource_class: Queue = Queue.CPU
    config: dict[str, Any] = Field(default_factory=dict)


class AssignmentMaterial(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    title: str = Field(min_length=1, max_length=200)
    reference_module: str | None = None
    # Deadlines, the late rule, attempt limits, last or best (docs/grading-policy.md).
    policy: Policy = Field(default_factory=Policy)
    # Config fragments that questions pull in with `use = ["name", ...]` (their own keys win).
    shared: dict[str, dict[str, Any]] = Field(default_factory=dict)
    questions: list[QuestionMaterial] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_question_ids(self) -> AssignmentMaterial:
        seen: set[str] = set()
        for question in self.questions:
            if question.id in seen:
                raise ValueError(f"question id {question.id!r} appears twice")
            seen.add(question.id)
        return self

    @model_validator(mode="after")
    def _expand_shared_fragments(self) -> AssignmentMaterial:
        for question in self.questions:
            uses = question.config.pop("use", [])
            if isinstance(uses, str):
                uses = [uses]
            merged: dict[str, Any] = {}
            for name in uses:
                if name not in self.shared:
                    known = ", ".join(sorted(self.shared)) or "none"
                    raise ValueError(
                        f"question {question.id} uses unknown shared config {name!r} (known: {known})"
                    )
                merged |= self.shared[name]
            question.config = merged | question.config
        return self


@dataclass(frozen=True)
class LoadedMaterial:
    material: AssignmentMaterial
    reference_source: str
    content_hash: str


def read_material(folder: Path) -> LoadedMaterial:
    """Parse and validate a material folder; raises MaterialError naming the problem."""
    path = folder / MATERIAL_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaterialError(f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise MaterialError(f"{path}: {error}") from None
    try:
        material = AssignmentMaterial.model_validate(raw)
    except ValidationError as error:
        raise MaterialError(f"{path}: {error}") from None
    reference_source = ""
    if material.reference_module:
        module_path = (folder / material.reference_module).resolve()
        if folder.resolve() not in module_path.parents:
            raise MaterialError(f"reference_module {material.reference_module!r} lies outside {folder}")
        try:
            reference_source = module_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MaterialError(f"reference module {module_path} does not exist") from None
    content_hash = _content_hash(material, reference_source)
    validate_questions(material, reference_source, content_hash)
    return LoadedMaterial(material, reference_source, content_hash)


def validate_questions(material: AssignmentMaterial, reference_source: str, content_hash: str) -> None:
    try:
        reference = load_reference_functions(reference_source, content_hash)
    except ReferenceModuleError as error:
        raise MaterialError(str(error)) from None
    context = GradingContext(variant_seed=0, reference=reference)
    for question in material.questions:
        where = f"question {question.id}"
        try:
            grader = get_grader(question.kind)
        except KeyError as error:
            raise MaterialError(f"{where}: {error.args[0]}") from None
        try:
            config = grader.parse_config(question.config)
        except ValidationError as error:
            raise MaterialError(f"{where}: invalid {question.kind} config: {error}") from None
        missing = [name for name in grader.reference_names(config) if name not in reference]
        if missing:
            known = ", ".join(sorted(reference)) or "none"
            raise MaterialError(
                f"{where}: the reference module defines no {', '.join(missing)} (it defines: {known})"
            )
        try:
            grader.self_check(config, context)
        except Exception as error:
            raise MaterialError(f"{where}: the reference fails on this question: {error!r}") from None


def _content_hash(material: AssignmentMaterial, reference_source: str) -> str:
    canonical = json.dumps(material.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256()
    digest.update(canonical.encode())
    digest.update(b"\x00")
    digest.update(reference_source.encode())
    return digest.hexdigest()
