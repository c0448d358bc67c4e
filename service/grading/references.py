"""Instructor reference modules, imported from the source stored with an assignment version.

The source is trusted material (written by course staff, loaded by `autograde assignments load`),
never student input. Keeping it in the database lets any worker grade any version.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from graders import ReferenceFunctions

_MODULE_DIRECTORY = Path(tempfile.gettempdir()) / "autograde-reference-modules"


class ReferenceModuleError(Exception):
    pass


@lru_cache(maxsize=64)
def load_reference_functions(source: str, content_hash: str) -> ReferenceFunctions:
    """The public functions a reference module defines, keyed by name (cached per content)."""
    if not source.strip():
        return {}
    module_name = f"autograde_reference_{content_hash[:24]}"
    _MODULE_DIRECTORY.mkdir(parents=True, exist_ok=True)
    path = _MODULE_DIRECTORY / f"{module_name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ReferenceModuleError(f"cannot import the reference module from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise ReferenceModuleError(f"the reference module failed to import: {error!r}") from error
    functions: dict[str, Callable[..., Any]] = {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == module_name
    }
    return functions
