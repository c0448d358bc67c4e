"""autograde's graders: a pure library. Data in, GradeResult out; no web, database or queue code."""

from graders._context import GradingContext, ReferenceFunctions, derive_variant_seed
from graders._grader import Grader, GraderAnswer, GraderConfig, GraderKind, SupportsPreview, SupportsVariants
from graders._json_depth import json_nesting_depth
from graders._registry import get_grader, known_kinds
from graders._result import GradeResult, JSONValue, PublicView, Verdict
from graders._storable import storable_details

__all__ = [
    "GradeResult",
    "Grader",
    "GraderAnswer",
    "GraderConfig",
    "GraderKind",
    "GradingContext",
    "JSONValue",
    "PublicView",
    "ReferenceFunctions",
    "SupportsPreview",
    "SupportsVariants",
    "Verdict",
    "derive_variant_seed",
    "get_grader",
    "json_nesting_depth",
    "known_kinds",
    "storable_details",
]
