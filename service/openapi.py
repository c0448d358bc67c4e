"""The OpenAPI document as a client generator reads it: stable operation ids, and named schemas for
the bodies that routes read themselves.

FastAPI's default id (`create_submission_api_v1_assignments_assignment_submissions_post`) changes
whenever a function, path or method does; `<domain>-<verb>` changes only when we mean it to.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

COMPONENT_REF = "#/components/schemas/{model}"


def operation_id(route: APIRoute) -> str:
    """`<domain>-<verb>` for a route without an explicit `operation_id`: the router's tag (its
    domain) and the route's name (its function's), e.g. `marking-grade-answer`."""
    if not route.tags:
        raise ValueError(f"route {route.path} has no tag to name its domain in its operation id")
    tag = route.tags[0]
    domain = tag.value if isinstance(tag, Enum) else tag
    return f"{domain}-{route.name.replace('_', '-')}"


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The schema of a body that a route reads itself (given in its `openapi_extra`): a reference to
    the model's component, carrying the components it needs under `$defs` until
    `with_request_body_components` moves them where FastAPI puts those of declared bodies."""
    references, definitions = models_json_schema([(model, "validation")], ref_template=COMPONENT_REF)
    return {**references[(model, "validation")], "$defs": definitions["$defs"]}


def with_request_body_components(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi` that moves the `$defs` of request bodies into `components/schemas`, so that a
    client generator names their models (`ChoiceAnswer`, not a name made from the path)."""
    build = app.openapi

    def document() -> dict[str, Any]:
        built = build()
        if not any("$defs" in schema for schema in _request_body_schemas(built)):
            return built
        # The bodies are the routes' own dicts (openapi_extra): change a copy, which FastAPI caches.
        moved = copy.deepcopy(built)
        components = moved.setdefault("components", {}).setdefault("schemas", {})
        for schema in _request_body_schemas(moved):
            for name, definition in schema.pop("$defs", {}).items():
                if components.setdefault(name, definition) != definition:
                    raise ValueError(f"two different schemas are named {name}")
        app.openapi_schema = moved
        return moved

    return document


def _request_body_schemas(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                yield content.get("schema", {})
